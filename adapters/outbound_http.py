"""Outbound GETs of JSON documents with httpx, as ``ports.outbound.JsonFetcher``.

Every URL, the first and each redirect, is checked against the server's
:class:`~domain.outbound.OutboundPolicy` before it is requested (redirects are followed
here, hop by hop, never by httpx). The whole exchange, redirects included, must finish
within ``timeout_seconds``, and a body larger than ``max_bytes`` is abandoned as it
arrives. Proxy settings from the environment are ignored, so the policy sees the real
destination. A client is built per fetch: fetches are rare (callers cache), and a pooled
client would need a lifecycle of its own.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any
from urllib.parse import urljoin

import httpx

from domain.outbound import OutboundPolicy
from ports.outbound import OutboundFailed

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class HttpxJsonFetcher:
    def __init__(
        self, policy: OutboundPolicy, *, timeout_seconds: float = 5.0,
        max_bytes: int = 256 * 1024, max_redirects: int = 3,
    ) -> None:
        self.policy = policy
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self._tls = ssl.create_default_context()

    async def fetch_json(self, url: str) -> Any:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                body = await self._get(url)
        except TimeoutError:
            raise OutboundFailed(f"no answer within {self.timeout_seconds:g} seconds") from None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise OutboundFailed("the answer is not JSON") from None

    async def _get(self, url: str) -> bytes:
        async with httpx.AsyncClient(
            verify=self._tls, follow_redirects=False, trust_env=False,
            timeout=self.timeout_seconds, headers={"Accept": "application/json"},
        ) as client:
            for _ in range(self.max_redirects + 1):
                refusal = self.policy.refusal(url)
                if refusal is not None:
                    raise OutboundFailed(f"{url} is not allowed: {refusal}")
                try:
                    async with client.stream("GET", url) as response:
                        if response.status_code in _REDIRECTS:
                            location = response.headers.get("location")
                            if not location:
                                raise OutboundFailed("a redirect without a Location")
                            url = urljoin(url, location)
                            continue
                        if response.status_code != 200:
                            raise OutboundFailed(f"the server answered {response.status_code}")
                        return await self._read(response)
                except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
                    raise OutboundFailed(f"the request failed ({type(exc).__name__})") from None
            raise OutboundFailed(f"more than {self.max_redirects} redirects")

    async def _read(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise OutboundFailed(f"the answer is larger than {self.max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise OutboundFailed(f"the answer is larger than {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

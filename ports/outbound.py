"""The outbound port: documents the server fetches from URLs found in client metadata.

The URL policy is :class:`domain.outbound.OutboundPolicy`; the adapter enforces it on the
URL and on every redirect, bounds the time and the size of the answer, and raises only
:class:`OutboundFailed`.
"""

from __future__ import annotations

from typing import Any, Protocol

from domain.errors import DomainError


class OutboundFailed(DomainError):
    """The document could not be had: refused by the policy (the URL or a redirect),
    timed out, unreachable, an answer other than 200, too large, or not JSON. The message
    says which, in words fit for an error description (no internal component names)."""


class JsonFetcher(Protocol):
    async def fetch_json(self, url: str) -> Any:
        """The JSON document at ``url`` (GET), decoded. Raises :class:`OutboundFailed`.

        Takes no ``now``: it decides nothing by time (the caller caches, by its clock)."""
        ...

"""The public keys of ``private_key_jwt`` clients: their ``jwks``, or their ``jwks_uri``
fetched and cached.

A ``jwks_uri`` document is cached per instance for :attr:`ClientKeys.max_age` seconds
(keys are public, so a per-instance cache decides nothing about safety: every assertion is
still checked, and its ``jti`` claimed through the store). An assertion whose ``kid`` the
cached set lacks makes one refetch (the client rotated its key), but at most one per URL
per :attr:`ClientKeys.refresh_interval` seconds, so that assertions with made-up ``kid``
values cannot make the server fetch on every request; concurrent requests share one
fetch. When a refetch fails, the keys already cached stay in use until it succeeds.
Inline ``jwks`` are imported once per distinct document. Both caches are bounded.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any, TypeVar

import msgspec

from domain.clients import Client
from domain.outbound import OutboundPolicy
from ports.client_assertion import AssertionCodec, InvalidAssertion, PublicKeys
from ports.outbound import JsonFetcher, OutboundFailed

MAX_AGE_SECONDS = 300
REFRESH_INTERVAL_SECONDS = 30
MAX_CACHED = 1024

K = TypeVar("K")
V = TypeVar("V")


class _Fetched(msgspec.Struct):
    keys: PublicKeys
    fetched_at: int


class ClientKeys:
    """Where a client's public keys come from (see the module docstring)."""

    def __init__(
        self, codec: AssertionCodec, fetcher: JsonFetcher, policy: OutboundPolicy, *,
        max_age: int = MAX_AGE_SECONDS, refresh_interval: int = REFRESH_INTERVAL_SECONDS,
        max_cached: int = MAX_CACHED,
    ) -> None:
        self.codec = codec
        self.fetcher = fetcher
        self.policy = policy
        self.max_age = max_age
        self.refresh_interval = refresh_interval
        self.max_cached = max_cached
        self._inline: OrderedDict[bytes, PublicKeys] = OrderedDict()
        self._fetched: OrderedDict[str, _Fetched] = OrderedDict()
        #: Attempts by URL, successful or not: what the refresh interval counts from.
        self._attempted: dict[str, int] = {}
        self._in_flight: dict[str, asyncio.Future[PublicKeys]] = {}

    async def keys_of(self, client: Client, kid: str | None, now: int) -> PublicKeys:
        """The keys to check an assertion of ``client`` that names ``kid``. Raises
        :class:`InvalidAssertion` when the client has no keys or they cannot be had."""
        if client.jwks is not None:
            return self._inline_keys(client.jwks)
        if client.jwks_uri is None:
            raise InvalidAssertion("the client has neither jwks nor jwks_uri")
        return await self._uri_keys(client.jwks_uri, kid, now)

    async def refreshed(self, client: Client, now: int) -> PublicKeys | None:
        """The keys of the client's ``jwks_uri`` fetched again, when the refresh interval
        allows it (after a signature that no cached key verifies, from a client that names no
        ``kid``: it may have rotated); None when it does not, or the client has inline keys
        or the fetch fails."""
        url = client.jwks_uri
        if client.jwks is not None or url is None or not self._may_refresh(url, now):
            return None
        try:
            return await self._fetch(url, now)
        except InvalidAssertion:
            return None

    def _inline_keys(self, jwks: dict[str, Any]) -> PublicKeys:
        document = msgspec.json.encode(jwks)
        keys = self._inline.get(document)
        if keys is None:
            keys = self.codec.public_keys(jwks)
            _bounded_put(self._inline, document, keys, self.max_cached)
        else:
            self._inline.move_to_end(document)
        return keys

    async def _uri_keys(self, url: str, kid: str | None, now: int) -> PublicKeys:
        cached = self._fetched.get(url)
        fresh = cached is not None and now - cached.fetched_at < self.max_age
        if cached is not None and fresh and (
                kid is None or cached.keys.has_kid(kid) or not self._may_refresh(url, now)):
            return cached.keys
        try:
            return await self._fetch(url, now)
        except InvalidAssertion:
            if cached is not None:
                return cached.keys  # keep serving the last good keys while the URL fails
            raise

    def _may_refresh(self, url: str, now: int) -> bool:
        return now - self._attempted.get(url, now - self.refresh_interval) >= self.refresh_interval

    async def _fetch(self, url: str, now: int) -> PublicKeys:
        running = self._in_flight.get(url)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[PublicKeys] = asyncio.get_running_loop().create_future()
        self._in_flight[url] = future
        self._attempted[url] = now
        try:
            keys = await self._load(url)
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        except BaseException:  # cancelled: the waiters are cancelled too, and may retry
            future.cancel()
            raise
        finally:
            del self._in_flight[url]
        future.set_result(keys)
        _bounded_put(self._fetched, url, _Fetched(keys, now), self.max_cached)
        if len(self._attempted) > 2 * self.max_cached:
            self._attempted = {u: self._attempted[u] for u in self._fetched if u in self._attempted}
        return keys

    async def _load(self, url: str) -> PublicKeys:
        refusal = self.policy.refusal(url)
        if refusal is not None:
            raise InvalidAssertion(f"the client's jwks_uri is not allowed: {refusal}")
        try:
            document = await self.fetcher.fetch_json(url)
        except OutboundFailed as exc:
            raise InvalidAssertion(f"the client's jwks_uri could not be fetched: {exc}") from None
        if not isinstance(document, dict):
            raise InvalidAssertion("the client's jwks_uri did not answer a JWK Set")
        return self.codec.public_keys(document)


def _bounded_put(cache: OrderedDict[K, V], key: K, value: V, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)

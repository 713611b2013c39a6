"""The httpx fetcher (adapters.outbound_http) against a loopback server: the policy on
every hop, the size bound, the timeout, and errors as OutboundFailed only."""

from __future__ import annotations

import pytest

from adapters.outbound_http import HttpxJsonFetcher
from domain.outbound import OutboundPolicy
from ports.outbound import OutboundFailed
from tests.e2e.jwks_server import jwks_server


async def test_a_document_is_fetched_from_loopback_when_allowed() -> None:
    with jwks_server() as server:
        server.document = {"keys": [{"kty": "OKP"}]}
        fetcher = HttpxJsonFetcher(OutboundPolicy(allow_loopback=True))
        assert await fetcher.fetch_json(server.url) == {"keys": [{"kty": "OKP"}]}


async def test_loopback_http_is_refused_by_default() -> None:
    with jwks_server() as server:
        with pytest.raises(OutboundFailed, match="must use https"):
            await HttpxJsonFetcher(OutboundPolicy()).fetch_json(server.url)
        assert server.requests == []  # refused before any request


async def test_a_redirect_to_a_url_the_policy_refuses_is_not_followed() -> None:
    with jwks_server() as server:
        fetcher = HttpxJsonFetcher(OutboundPolicy(allow_loopback=True))
        with pytest.raises(OutboundFailed, match=r"http://10\.0\.0\.1/jwks.json is not allowed"):
            await fetcher.fetch_json(server.base + "/redirect")
        server.redirect_to = server.url  # an allowed hop is followed
        server.document = {"keys": []}
        assert await fetcher.fetch_json(server.base + "/redirect") == {"keys": []}


async def test_size_status_and_format_are_bounded() -> None:
    with jwks_server() as server:
        fetcher = HttpxJsonFetcher(OutboundPolicy(allow_loopback=True), max_bytes=64 * 1024)
        with pytest.raises(OutboundFailed, match="larger than 65536 bytes"):
            await fetcher.fetch_json(server.base + "/huge")
        with pytest.raises(OutboundFailed, match="answered 404"):
            await fetcher.fetch_json(server.base + "/missing")
        with pytest.raises(OutboundFailed, match="not JSON"):
            await fetcher.fetch_json(server.base + "/not-json")


async def test_an_unreachable_server_and_a_timeout() -> None:
    with jwks_server() as server:
        port = server.base.rsplit(":", 1)[1]
    fetcher = HttpxJsonFetcher(OutboundPolicy(allow_loopback=True), timeout_seconds=1)
    with pytest.raises(OutboundFailed, match="request failed"):
        await fetcher.fetch_json(f"http://127.0.0.1:{port}/jwks.json")
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never answers
    try:
        slow = HttpxJsonFetcher(OutboundPolicy(allow_loopback=True), timeout_seconds=0.5)
        with pytest.raises(OutboundFailed, match=r"no answer within 0.5 seconds|request failed"):
            await slow.fetch_json(f"http://127.0.0.1:{silent.getsockname()[1]}/jwks.json")
    finally:
        silent.close()

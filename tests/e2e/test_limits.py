"""Limits and headers: 1 MiB bodies, rate limits (429 + Retry-After), security headers,
and graceful shutdown of a served process."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.memory.store import MemoryStore
from domain.errors import StoreUnavailable
from tests.e2e.ops_support import (
    CLIENT_CREDENTIALS,
    OTHER_ID,
    OTHER_SECRET,
    SERVICE_ID,
    SERVICE_SECRET,
    client_token,
    metric,
    ops_app,
)
from tests.e2e.signin_flow import LOAD_BALANCER, FakeClock, Harness, auth_params, forwarded_for
from tests.services.auth_service_process import ServedProcess

MIB = 1024 * 1024
INTERNAL_NAMES = ("asyncpg", "sqlalchemy", "redis", "litestar", "Traceback")


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with ops_app(tmp_path) as running:
        yield running


# Body size


def test_a_declared_body_over_one_mib_is_refused_with_413(h: Harness) -> None:
    response = h.client.post("/oauth/token", content=b"a" * (MIB + 1),
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"
    assert "1048576 bytes" in response.json()["error_description"]


def test_a_streamed_body_over_one_mib_is_refused_with_413(h: Harness) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"b" * 64 * 1024

    response = h.client.post("/scim/v2/Users", content=chunks(),
                             headers={"content-type": "application/scim+json"})
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"


def test_a_streamed_body_under_the_limit_reaches_the_application(h: Harness) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"grant_type=client_"
        yield b"credentials"

    response = h.client.post("/oauth/token", content=chunks(), auth=(SERVICE_ID, SERVICE_SECRET),
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text


def test_a_body_of_exactly_one_mib_is_not_refused_for_size(h: Harness) -> None:
    body = b"grant_type=client_credentials&pad=" + b"p" * (MIB - 34)
    assert len(body) == MIB
    response = h.client.post("/oauth/token", content=body, auth=(SERVICE_ID, SERVICE_SECRET),
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code != 413


# Rate limits


def test_defaults_do_not_throttle_the_token_endpoint(h: Harness) -> None:
    statuses = {client_token(h.client).status_code for _ in range(150)}
    assert statuses == {200}


def test_token_requests_are_limited_per_client(tmp_path: Path) -> None:
    with ops_app(tmp_path, RATE_LIMIT_TOKEN_PER_MINUTE="3") as h:
        assert [client_token(h.client).status_code for _ in range(3)] == [200, 200, 200]
        refused = client_token(h.client)
        assert refused.status_code == 429
        assert refused.json()["error"] == "too_many_requests"
        retry_after = int(refused.headers["retry-after"])
        assert 0 < retry_after <= 60
        assert refused.headers["cache-control"] == "no-store"
        # Another client is not affected; the client via the form body is the same client.
        assert client_token(h.client, OTHER_ID, OTHER_SECRET).status_code == 200
        in_body = h.client.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": SERVICE_ID,
            "client_secret": SERVICE_SECRET})
        assert in_body.status_code == 429
        h.clock.advance(retry_after)
        assert client_token(h.client).status_code == 200
        text = h.client.get("/metrics").text
        assert metric(text, "auth_rate_limited_total", rule="token_client") == 2


def test_token_requests_are_limited_per_address(tmp_path: Path) -> None:
    with ops_app(tmp_path, RATE_LIMIT_TOKEN_IP_PER_MINUTE="2") as h:
        assert client_token(h.client).status_code == 200
        assert client_token(h.client, OTHER_ID, OTHER_SECRET).status_code == 200
        refused = client_token(h.client, OTHER_ID, OTHER_SECRET)
        assert refused.status_code == 429 and "retry-after" in refused.headers


def test_trailing_slashes_do_not_dodge_the_limit(tmp_path: Path) -> None:
    with ops_app(tmp_path, RATE_LIMIT_TOKEN_IP_PER_MINUTE="1") as h:
        client_token(h.client)
        response = h.client.post("/oauth/token/", data={"grant_type": "client_credentials"},
                                 auth=(SERVICE_ID, SERVICE_SECRET))
        assert response.status_code == 429


def test_sign_in_posts_are_limited_per_address(tmp_path: Path) -> None:
    with ops_app(tmp_path, RATE_LIMIT_SIGNIN_PER_MINUTE="2") as h:
        form = {"username": "nobody", "password": "x"}
        statuses = [h.client.post("/oauth/authorize", data=form).status_code for _ in range(3)]
        assert statuses[:2] != [429, 429] and statuses[2] == 429
        # Showing the page is not a sign-in attempt.
        assert h.client.get("/oauth/authorize", params=auth_params()).status_code == 200


def test_plain_sign_in_posts_share_the_per_address_limit(tmp_path: Path) -> None:
    with ops_app(tmp_path, RATE_LIMIT_SIGNIN_PER_MINUTE="2") as h:
        form = {"username": "nobody", "password": "x"}
        statuses = [h.client.post("/signin", data=form).status_code for _ in range(2)]
        assert 429 not in statuses
        assert h.client.post("/oauth/authorize", data=form).status_code == 429
        assert h.client.post("/signin/", data=form).status_code == 429


def test_behind_a_trusted_proxy_the_limits_count_each_client_address(tmp_path: Path) -> None:
    with ops_app(tmp_path, peer=LOAD_BALANCER, TRUSTED_PROXIES="10.0.0.0/24",
                 RATE_LIMIT_SIGNIN_PER_MINUTE="2", RATE_LIMIT_TOKEN_IP_PER_MINUTE="1") as h:
        form = {"username": "nobody", "password": "x"}
        for address in ("203.0.113.9", "198.51.100.7"):
            # A second proxy in front of the balancer: the client is the right-most untrusted.
            chain = forwarded_for(f"{address}, 10.0.0.2")
            statuses = [h.client.post("/oauth/authorize", data=form, headers=chain).status_code
                        for _ in range(3)]
            assert statuses[2] == 429 and 429 not in statuses[:2], address
            token = h.client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                  auth=(SERVICE_ID, SERVICE_SECRET), headers=chain)
            assert token.status_code == 200, address


def test_instances_sharing_a_store_share_the_limit(tmp_path: Path) -> None:
    store, clock = MemoryStore(), FakeClock()
    with ops_app(tmp_path, store=store, clock=clock, RATE_LIMIT_TOKEN_PER_MINUTE="2") as one, \
            ops_app(tmp_path, store=store, clock=clock, RATE_LIMIT_TOKEN_PER_MINUTE="2") as two:
        assert client_token(one.client).status_code == 200
        assert client_token(two.client).status_code == 200
        assert client_token(one.client).status_code == 429


def test_client_id_extraction_survives_odd_forms(tmp_path: Path) -> None:
    with ops_app(tmp_path, RATE_LIMIT_TOKEN_PER_MINUTE="1") as h:
        crowded = "&".join(f"f{n}=v" for n in range(80)) + f"&client_id={SERVICE_ID}"
        for body in (crowded, "client_id=%FF%FE", "\xff=\xfe", ""):
            response = h.client.post("/oauth/token", content=body.encode("latin-1"),
                                     headers={"content-type": "application/x-www-form-urlencoded"})
            assert 400 <= response.status_code < 500, (body, response.text)


class CountersDown(MemoryStore):
    async def hit(self, key: str, window_seconds: int, now: int, amount: int = 1) -> int:
        if key.startswith("rl:"):
            raise StoreUnavailable("redis: connection refused")
        return await super().hit(key, window_seconds, now, amount)


def test_a_limiter_that_cannot_count_fails_closed_with_503(tmp_path: Path) -> None:
    with ops_app(tmp_path, store=CountersDown(), RATE_LIMIT_TOKEN_PER_MINUTE="5") as h:
        response = client_token(h.client)
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert not any(name in response.text for name in INTERNAL_NAMES)


# Headers


def test_security_headers_on_json_and_no_store_on_tokens(h: Harness) -> None:
    response = client_token(h.client)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "no-store" in response.headers["cache-control"]
    assert h.client.get("/health").headers["x-content-type-options"] == "nosniff"
    assert h.client.get("/missing").headers["x-content-type-options"] == "nosniff"


def test_html_pages_cannot_be_framed(h: Harness) -> None:
    page = h.client.get("/oauth/authorize", params=auth_params())
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    docs = h.client.get("/schema")
    if docs.headers.get("content-type", "").startswith("text/html"):
        assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
        assert docs.headers["x-frame-options"] == "DENY"
    assert page.headers["content-security-policy"].count("frame-ancestors") == 1


# Graceful shutdown


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    sock.settimeout(20)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_sigterm_lets_an_in_flight_request_finish() -> None:
    served = ServedProcess({"CLIENT_CREDENTIALS": CLIENT_CREDENTIALS})
    try:
        served.wait_ready()
        body = b"grant_type=client_credentials"
        basic = base64.b64encode(f"{SERVICE_ID}:{SERVICE_SECRET}".encode())
        head = (
            f"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Authorization: Basic {basic.decode()}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", served.port)) as sock:
            sock.sendall(head + body[:10])  # in flight: the server waits for the rest
            time.sleep(0.5)
            served.process.send_signal(15)
            time.sleep(1.0)
            assert served.process.poll() is None, "exited with a request in flight"
            sock.sendall(body[10:])
            response = _read_response(sock)
        assert response.startswith(b"HTTP/1.1 200"), response[:200]
        assert b'"access_token":"tk_' in response
        # uvicorn re-raises the signal once it has drained, so the status says "SIGTERM".
        assert served.process.wait(timeout=20) in (0, -15)
        assert "Traceback" not in served.output()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", served.port), timeout=2).close()
    finally:
        if served.process.poll() is None:
            print(served.output())
        served.close()



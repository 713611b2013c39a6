"""GET /metrics: request, token, security, store and purge metrics, with bounded labels."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.memory.store import MemoryStore
from domain.clients import Client
from domain.entities import AccessToken, AccountToken, StoreCounts
from domain.errors import StoreUnavailable
from domain.maintenance import purge_expired
from tests.e2e.ops_support import SERVICE_ID, SERVICE_SECRET, client_token, metric, ops_app
from tests.e2e.signin_flow import (
    PUBLIC_ID,
    Harness,
    auth_params,
    exchange,
    full_flow,
    pkce_pair,
    redirect_params,
    sign_in,
)


@pytest.fixture
def h(tmp_path: Path) -> Any:
    with ops_app(tmp_path) as running:
        yield running


def scrape(h: Harness) -> str:
    response = h.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_token_lifecycle_is_counted_by_grant_and_result(h: Harness) -> None:
    token = client_token(h.client).json()["access_token"]
    auth = (SERVICE_ID, SERVICE_SECRET)
    h.client.post("/oauth/introspect", data={"token": token}, auth=auth)
    h.client.post("/oauth/revoke", data={"token": token}, auth=auth)
    h.client.post("/oauth/introspect", data={"token": token}, auth=auth)

    text = scrape(h)
    assert metric(text, "auth_tokens_issued_total", grant_type="client_credentials") == 1
    assert metric(text, "auth_tokens_introspected_total", result="active") == 1
    assert metric(text, "auth_tokens_introspected_total", result="inactive") == 1
    assert metric(text, "auth_tokens_revoked_total", result="revoked") == 1
    assert metric(text, "auth_http_requests_total", method="POST", route="/oauth/token",
                  status="200") == 1
    assert metric(text, "auth_http_request_duration_seconds_count", method="POST",
                  route="/oauth/introspect", status="200") == 2
    assert token not in text


def test_routes_are_templates_and_unknown_input_collapses(h: Harness) -> None:
    secret_looking = "tk_" + "Z" * 43
    h.client.get("/scim/v2/Users/0f6c1d7e-private-user-id")
    h.client.get(f"/nothing/{secret_looking}")
    h.client.request("BREW", "/health")

    text = scrape(h)
    assert "0f6c1d7e-private-user-id" not in text and secret_looking not in text
    assert metric(text, "auth_http_requests_total", route="/scim/v2/Users/{user_id}") == 1
    assert metric(text, "auth_http_requests_total", method="GET", route="<unmatched>",
                  status="404") == 1
    assert metric(text, "auth_http_requests_total", method="other") == 1


def test_security_events_are_counted(h: Harness) -> None:
    h.add_user()
    tokens = full_flow(h)
    # The refresh token rotated once, then presented again: reuse.
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
               "client_id": PUBLIC_ID}
    assert h.client.post("/oauth/token", data=refresh).status_code == 200
    assert h.client.post("/oauth/token", data=refresh).status_code == 400
    # A code exchanged twice: replay.
    verifier, challenge = pkce_pair()
    code = redirect_params(sign_in(h, auth_params(code_challenge=challenge)))["code"]
    assert exchange(h, code, verifier).status_code == 200
    assert exchange(h, code, verifier).status_code == 400
    # A wrong password.
    assert sign_in(h, auth_params(), password="wrong").status_code in (200, 400, 401)

    text = scrape(h)
    assert metric(text, "auth_refresh_token_reuse_detections_total") == 1
    assert metric(text, "auth_authorization_code_replays_total") == 1
    assert metric(text, "auth_signin_failures_total", reason="bad_password") == 1
    assert metric(text, "auth_tokens_issued_total", grant_type="authorization_code") == 2
    assert metric(text, "auth_tokens_issued_total", grant_type="refresh_token") == 1
    assert metric(text, "auth_security_events_total", event="signin_failed") == 1


def test_purge_counts_are_exported(h: Harness) -> None:
    now = h.clock.now()
    for n in range(3):
        record = AccessToken(token_hash=f"{n:064x}", token_display="tk_abcd...", active=True,
                             scope="read", client_id="svc", exp=now + 1, iat=now)
        h.run(h.store.save_tokens(record, None, now))
    h.run(h.store.save_account_token(AccountToken(
        token_hash="a" * 64, kind="email_verification", user_id="u-1", email="a@example.com",
        created_at=now, exp=now + 1), now))
    h.clock.advance(10)
    services = h.client.app.state.services
    h.run(purge_expired(services.store, services.clock, services.events))

    text = scrape(h)
    assert metric(text, "auth_purged_records_total", kind="access_tokens") == 3
    assert metric(text, "auth_purged_records_total", kind="account_tokens") == 1
    assert metric(text, "auth_purge_runs_total", result="completed") == 1


class UnavailableStore(MemoryStore):
    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None:
        raise StoreUnavailable("connection refused")


def test_store_errors_are_counted_by_backend(tmp_path: Path) -> None:
    with ops_app(tmp_path, store=UnavailableStore()) as h:
        response = h.client.post("/oauth/introspect", data={"token": "tk_" + "a" * 43},
                                 auth=(SERVICE_ID, SERVICE_SECRET))
        assert response.status_code == 503
        text = scrape(h)
    assert metric(text, "auth_store_errors_total", backend="hybrid") == 1


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    with ops_app(tmp_path) as first:
        client_token(first.client)
        with ops_app(tmp_path) as second:
            assert metric(scrape(second), "auth_tokens_issued_total",
                          grant_type="client_credentials") == 0
        assert metric(scrape(first), "auth_tokens_issued_total",
                      grant_type="client_credentials") == 1


def test_labels_stay_bounded_whatever_the_events_carry() -> None:
    from prometheus_client import generate_latest

    from entrypoints.metrics import Metrics
    from entrypoints.telemetry import TelemetryEvents

    metrics = Metrics("sql")
    events = TelemetryEvents(metrics)
    events.emit("token_issued", grant_type="urn:attacker:" + "x" * 500)
    events.emit("signin_failed", reason="'; DROP TABLE users; --")
    events.emit("Weird Event Name!", user_id="u-1")
    for n in range(50):
        metrics.observe_request(f"METHOD{n}", "<unmatched>", 405, 0.001)

    text = generate_latest(metrics.registry).decode()
    assert metric(text, "auth_tokens_issued_total", grant_type="other") == 1
    assert metric(text, "auth_signin_failures_total", reason="other") == 1
    assert metric(text, "auth_security_events_total", event="other") == 1
    assert metric(text, "auth_http_requests_total", method="other", status="405") == 50
    assert "attacker" not in text and "DROP" not in text and "METHOD1" not in text
    assert len(metrics._request_children) == 1


def store_records(text: str) -> dict[str, float]:
    """The ``auth_store_records`` samples, by part."""
    found = re.findall(r'^auth_store_records\{part="(\w+)"\} (\S+)$', text, re.MULTILINE)
    return {part: float(value) for part, value in found}


def test_store_sizes_are_exported_for_every_counted_part(h: Harness) -> None:
    h.add_user("alice", password=None)
    h.add_user("bob", password=None)
    client_token(h.client)
    client_token(h.client)
    h.run(h.store.create_client(Client(client_id="stored-app", name="Stored app")))
    now = h.clock.now()
    h.run(h.store.save_account_token(AccountToken(
        token_hash="a" * 64, kind="password_reset", user_id="u-1", email="a@example.com",
        created_at=now, exp=now + 1800), now))
    text = scrape(h)
    # One series per field of StoreCounts: a part added to counts() appears by itself.
    assert set(store_records(text)) == {f.name for f in msgspec.structs.fields(StoreCounts)}
    assert store_records(text) == {"users": 2, "groups": 0, "access_tokens": 2,
                                   "refresh_tokens": 0, "codes": 0, "clients": 1,
                                   "sessions": 0, "consents": 0,
                                   "device_authorizations": 0, "account_tokens": 1}
    assert metric(text, "auth_store_records_refreshed_timestamp_seconds") == h.clock.now()


def test_store_sizes_are_read_at_most_every_30_seconds(h: Harness) -> None:
    h.add_user("alice", password=None)
    assert store_records(scrape(h))["users"] == 1
    h.add_user("bob", password=None)
    h.clock.advance(29)
    assert store_records(scrape(h))["users"] == 1  # the cached value
    h.clock.advance(1)
    assert store_records(scrape(h))["users"] == 2


class CountingFailsStore(MemoryStore):
    fail = True
    calls = 0

    async def counts(self, now: int) -> StoreCounts:
        self.calls += 1
        if self.fail:
            raise StoreUnavailable("connection refused")
        return await super().counts(now)


def test_a_failing_store_does_not_break_metrics(tmp_path: Path) -> None:
    store = CountingFailsStore()
    with ops_app(tmp_path, store=store) as h:
        client_token(h.client)
        text = scrape(h)
        assert metric(text, "auth_tokens_issued_total", grant_type="client_credentials") == 1
        assert store_records(text) == {}
        scrape(h)
        assert store.calls == 1  # not asked again on every scrape while it fails
        store.fail = False
        h.clock.advance(30)
        assert store_records(scrape(h))["access_tokens"] == 1

"""Sessions end when they must (issue 14, item 5), on each backend: a user deactivated,
deleted or given a new password over SCIM (single writes and Bulk) loses its sessions at
once and each relying party with a ``backchannel_logout_uri`` receives a logout token
signed with the server's key; the admin API lists a user's sessions and ends one.

The CLI (``session``, ``user set-password``, ``user reset-mfa``) is tested in
tests/e2e/test_session_cli.py, where a separate process shares the server's store.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.entities import AccessToken
from domain.sessions import Session
from domain.tokens import hash_token, token_display
from entrypoints.logging import configure_logging
from entrypoints.settings import load_settings
from tests.e2e.admin_support import ADMIN_ID, ADMIN_SECRET, ISSUER, AdminApp, admin_app
from tests.e2e.backchannel_support import (
    BackchannelListener,
    backchannel_listener,
    logout_claims,
    open_session_in,
)
from tests.e2e.conftest import StoreBackend
from tests.e2e.signin_flow import PASSWORD

PROVISIONER_SECRET = "provisioner-secret-0123456789abcdefghij"
RP_SECRET = "rp-client-secret-0123456789abcdefghijkl"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SCIM_JSON = "application/scim+json"
INTERNAL = ("asyncpg", "sqlalchemy", "redis", "Traceback", "domain.", "adapters.")


def clients_toml(backchannel_uri: str) -> str:
    """The admin tool, a SCIM provisioner, a relying party with a back-channel logout URI
    (``rp``) and one without (``quiet``)."""
    return f"""
[[clients]]
client_id = "{ADMIN_ID}"
secret = "{ADMIN_SECRET}"
grant_types = ["client_credentials"]
scopes = ["admin"]

[[clients]]
client_id = "provisioner"
secret = "{PROVISIONER_SECRET}"
grant_types = ["client_credentials"]
scopes = ["scim:read", "scim:write"]

[[clients]]
client_id = "rp"
secret = "{RP_SECRET}"
redirect_uris = ["https://rp.example/cb"]
scopes = ["openid", "read"]
backchannel_logout_uri = "{backchannel_uri}"

[[clients]]
client_id = "quiet"
secret = "{RP_SECRET}"
redirect_uris = ["https://quiet.example/cb"]
scopes = ["openid", "read"]
"""


class Deployment:
    """The running app, its relying party's listener, and a SCIM provisioner."""

    def __init__(self, app: AdminApp, listener: BackchannelListener) -> None:
        self.app = app
        self.client = app.client
        self.listener = listener
        token = app.client_token("provisioner", PROVISIONER_SECRET, "scim:read scim:write")
        assert token.status_code == 200, token.text
        self.scim = {"Authorization": f"Bearer {token.json()['access_token']}",
                     "Content-Type": SCIM_JSON}

    def user(self, name: str) -> str:
        created = self.client.post("/scim/v2/Users", headers=self.scim, json={
            "userName": name, "password": PASSWORD})
        assert created.status_code == 201, created.text
        user_id: str = created.json()["id"]
        return user_id

    def session(self, user_id: str, clients: tuple[str, ...] = ("rp", "quiet")) -> Session:
        session: Session = self.app.call(open_session_in, self.app.store, user_id, clients,
                                         self.app.clock.now())
        self.app.clock.advance(1)  # the next one is younger: list order is by created_at
        return session

    def sessions_of(self, user_id: str) -> list[str]:
        sessions = self.app.call(self.app.store.list_sessions, user_id, self.app.clock.now())
        return [s.sid for s in sessions]

    def jwks(self) -> dict[str, Any]:
        document: dict[str, Any] = self.client.get("/jwks.json").json()
        return document

    def logged_out(self, count: int) -> list[dict[str, Any]]:
        """The claims of the first ``count`` logout tokens the relying party received,
        each verified against the server's JWKS."""
        jwks = self.jwks()
        tokens = self.listener.wait_for(count)
        # The deliveries' own outcomes (events) are recorded once their tasks finish.
        self.app.call(self.app.app.state.services.logout.sender.drain)
        assert len(self.listener.tokens) == count, "more logout tokens than sessions"
        return [logout_claims(jwks, token) for token in tokens]


@pytest.fixture
def d(store: StoreBackend, tmp_path: Path) -> Iterator[Deployment]:
    with backchannel_listener() as listener:
        clients_file = tmp_path / "session-clients.toml"
        clients_file.write_text(clients_toml(listener.uri))
        with admin_app(store, tmp_path, CLIENTS_FILE=str(clients_file),
                       OUTBOUND_ALLOW_LOOPBACK="1") as app:
            yield Deployment(app, listener)


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and set(body) == {"error", "error_description"}, body
    for internal in INTERNAL:
        assert internal not in response.text
    description: str = body["error_description"]
    return description


# SCIM


def _patch(d: Deployment, user_id: str, *operations: dict[str, Any]) -> None:
    response = d.client.patch(f"/scim/v2/Users/{user_id}", headers=d.scim, json={
        "schemas": [PATCH_OP], "Operations": list(operations)})
    assert response.status_code == 200, response.text


def _deactivate_by_patch(d: Deployment, user_id: str) -> None:
    _patch(d, user_id, {"op": "replace", "path": "active", "value": False})


def _deactivate_by_put(d: Deployment, user_id: str) -> None:
    response = d.client.put(f"/scim/v2/Users/{user_id}", headers=d.scim, json={
        "userName": "alice", "active": False})
    assert response.status_code == 200, response.text


def _delete(d: Deployment, user_id: str) -> None:
    response = d.client.delete(f"/scim/v2/Users/{user_id}", headers=d.scim)
    assert response.status_code == 204, response.text


def _new_password(d: Deployment, user_id: str) -> None:
    _patch(d, user_id, {"op": "replace", "path": "password", "value": "a whole new password"})


def _deactivate_in_bulk(d: Deployment, user_id: str) -> None:
    response = d.client.post("/scim/v2/Bulk", headers=d.scim, json={
        "schemas": [BULK_REQUEST], "Operations": [{
            "method": "PATCH", "path": f"/Users/{user_id}", "data": {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "active", "value": False}]}}]})
    assert response.status_code == 200, response.text
    assert response.json()["Operations"][0]["status"] == "200", response.text


WITHDRAWALS = {
    "deactivated by PATCH": (_deactivate_by_patch, "user_deactivated"),
    "deactivated by PUT": (_deactivate_by_put, "user_deactivated"),
    "deleted": (_delete, "user_deleted"),
    "given a new password": (_new_password, "password_changed"),
    "deactivated in a Bulk request": (_deactivate_in_bulk, "user_deactivated"),
}


@pytest.fixture
def logs(d: Deployment) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(load_settings({"LOG_FORMAT": "json"}), stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def _events(logs: io.StringIO, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines
            if line.get("logger") == "auth_service.events" and line.get("event") == name]


@pytest.mark.parametrize("how", list(WITHDRAWALS))
def test_a_user_withdrawn_over_scim_loses_its_sessions_at_once(
    d: Deployment, logs: io.StringIO, how: str
) -> None:
    withdraw, reason = WITHDRAWALS[how]
    alice, bob = d.user("alice"), d.user("bob")
    first, second = d.session(alice), d.session(alice, ("rp",))
    kept = d.session(bob)
    withdraw(d, alice)
    # Gone from the store as the answer arrives, and from the admin API.
    assert d.sessions_of(alice) == []
    assert d.sessions_of(bob) == [kept.sid]
    listed = d.client.get("/admin/sessions", params={"user_id": alice},
                          headers=d.app.admin())
    assert listed.status_code == 200 and listed.json() == {"sessions": []}
    # Each session had the relying party with a back-channel URI: one logout token each.
    claims = d.logged_out(2)
    assert sorted(c["sid"] for c in claims) == sorted([first.sid, second.sid])
    for c in claims:
        assert c["iss"] == ISSUER and c["aud"] == "rp" and c["sub"] == alice
        assert "http://schemas.openid.net/event/backchannel-logout" in c["events"]
        assert "nonce" not in c
    ended = _events(logs, "session_ended")
    assert [e["reason"] for e in ended] == [reason, reason]
    assert len(_events(logs, "backchannel_logout_delivered")) == 2


def test_deleting_a_user_withdraws_its_consents(d: Deployment) -> None:
    alice = d.user("alice")
    d.app.call(d.app.store.grant_consent, alice, "rp", ("openid",), d.app.clock.now())
    _delete(d, alice)
    assert d.app.call(d.app.store.list_consents, alice) == ()


def test_other_changes_keep_the_session(d: Deployment) -> None:
    alice = d.user("alice")
    session = d.session(alice)
    _patch(d, alice, {"op": "replace", "path": "displayName", "value": "Alice"})
    assert d.sessions_of(alice) == [session.sid]
    assert d.listener.tokens == []


# The admin API


def test_the_admin_api_lists_a_users_live_sessions(d: Deployment) -> None:
    alice, bob = d.user("alice"), d.user("bob")
    first = d.session(alice)
    second = d.session(alice, ("rp",))
    d.session(bob)
    response = d.client.get("/admin/sessions", params={"user_id": alice},
                            headers=d.app.admin())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    sessions = response.json()["sessions"]
    assert [s["sid"] for s in sessions] == [first.sid, second.sid]
    assert sessions[0] == {
        "sid": first.sid, "user_id": alice, "auth_time": first.auth_time, "amr": ["pwd"],
        "acr": "pwd", "created_at": first.created_at, "idle_exp": first.idle_exp,
        "exp": first.exp, "clients": ["rp", "quiet"]}
    assert first.id_hash not in response.text
    nobody = d.client.get("/admin/sessions", params={"user_id": "no-such-user"},
                          headers=d.app.admin())
    assert nobody.status_code == 200 and nobody.json() == {"sessions": []}


def test_the_admin_api_ends_one_session(d: Deployment, logs: io.StringIO) -> None:
    alice = d.user("alice")
    ended, kept = d.session(alice), d.session(alice)
    response = d.client.delete(f"/admin/sessions/{ended.sid}", headers=d.app.admin())
    assert response.status_code == 204, response.text
    assert d.sessions_of(alice) == [kept.sid]
    (claims,) = d.logged_out(1)
    assert claims["sid"] == ended.sid and claims["sub"] == alice
    (event,) = _events(logs, "sessions_revoked")
    assert event["actor"] == ADMIN_ID and event["sid"] == ended.sid
    assert [e["reason"] for e in _events(logs, "session_ended")] == ["operator"]
    again = d.client.delete(f"/admin/sessions/{ended.sid}", headers=d.app.admin())
    error(again, 404, "not_found")
    error(d.client.delete("/admin/sessions/sid_never", headers=d.app.admin()), 404,
          "not_found")


def test_bad_input_is_400(d: Deployment) -> None:
    admin = d.app.admin()
    for params in ({}, {"user_id": ""}, {"user_id": "nul\x00id"}, {"user_id": "u" * 256}):
        error(d.client.get("/admin/sessions", params=params, headers=admin), 400,
              "invalid_request")
    for sid in ("nul%00sid", "s" * 256):
        error(d.client.delete(f"/admin/sessions/{sid}", headers=admin), 400,
              "invalid_request")


def _user_token(d: Deployment) -> str:
    value = "tk_" + "u" * 43
    now = d.app.clock.now()
    d.app.call(d.app.store.save_tokens, AccessToken(
        token_hash=hash_token(value), token_display=token_display(value), active=True,
        scope="openid admin", client_id=ADMIN_ID, exp=now + 600, iat=now, sub="user-1"),
        None, now)
    return value


def test_the_admin_scope_on_a_clients_own_token_is_required(d: Deployment) -> None:
    alice = d.user("alice")
    session = d.session(alice)
    scim_token = d.scim["Authorization"]
    calls = (("GET", "/admin/sessions", {"user_id": alice}),
             ("DELETE", f"/admin/sessions/{session.sid}", None))
    for method, path, params in calls:
        for headers, status, code in (
            ({}, 401, "invalid_token"),
            ({"Authorization": "Bearer tk_nope"}, 401, "invalid_token"),
            ({"Authorization": f"Bearer {_user_token(d)}"}, 403, "insufficient_scope"),
            ({"Authorization": scim_token}, 403, "insufficient_scope"),
        ):
            response = d.client.request(method, path, params=params, headers=headers)
            error(response, status, code)
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert d.sessions_of(alice) == [session.sid]


def test_the_session_endpoints_are_in_the_openapi_document(d: Deployment) -> None:
    paths = d.client.get("/schema/openapi.json").json()["paths"]
    assert paths["/admin/sessions"]["get"]["operationId"] == "listSessions"
    assert paths["/admin/sessions/{sid}"]["delete"]["operationId"] == "deleteSession"
    assert "user_id" in [p["name"] for p in paths["/admin/sessions"]["get"]["parameters"]]

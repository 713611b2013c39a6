"""The admin API (/admin/clients) on each backend: authorization, every operation, every bad
input, compare-and-set, rotation, and clients usable at once on another instance."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.entities import AccessToken
from domain.errors import StoreUnavailable
from domain.tokens import hash_token, token_display
from entrypoints.logging import configure_logging
from entrypoints.settings import load_settings
from tests.doubles import FakeClock
from tests.e2e.admin_support import (
    ADMIN_ID,
    ENV_ID,
    ENV_SECRET,
    PUBLIC_REDIRECT,
    STATIC_ID,
    STATIC_SECRET,
    AdminApp,
    admin_app,
)
from tests.e2e.conftest import StoreBackend

INTERNAL = ("asyncpg", "sqlalchemy", "redis", "Traceback", "domain.", "adapters.")
SERVICE = {"client_id": "billing", "client_name": "Billing",
           "grant_types": ["client_credentials"], "scope": "read"}
PUBLIC = {"client_id": "spa2", "token_endpoint_auth_method": "none",
          "redirect_uris": [PUBLIC_REDIRECT], "grant_types": ["authorization_code"],
          "scope": "openid profile"}


@pytest.fixture
def a(store: StoreBackend, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(store, tmp_path) as running:
        yield running


def error(response: httpx.Response, status: int, code: str) -> str:
    """The error_description of a JSON error with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code, body
    assert set(body) == {"error", "error_description"}
    for internal in INTERNAL:
        assert internal not in response.text
    description: str = body["error_description"]
    assert description
    return description


# Authorization


def test_no_token_is_401_with_a_bearer_challenge(a: AdminApp) -> None:
    for response in (a.client.get("/admin/clients"),
                     a.client.post("/admin/clients", json=SERVICE),
                     a.client.get("/admin/clients", headers={"Authorization": "Bearer tk_nope"})):
        error(response, 401, "invalid_token")
        assert response.headers["www-authenticate"].startswith('Bearer realm="admin"')


def test_a_user_token_with_the_admin_scope_is_403(a: AdminApp) -> None:
    value = "tk_" + "u" * 43
    now = a.clock.now()
    a.call(a.store.save_tokens, AccessToken(
        token_hash=hash_token(value), token_display=token_display(value), active=True,
        scope="openid admin", client_id=ADMIN_ID, exp=now + 600, iat=now, sub="user-1"),
        None, now)
    response = a.client.get("/admin/clients", headers={"Authorization": f"Bearer {value}"})
    assert "a token issued for a user is refused" in error(response, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_a_service_token_without_the_admin_scope_is_403(a: AdminApp) -> None:
    token = a.client_token(ENV_ID, ENV_SECRET, "read").json()["access_token"]
    response = a.client.get("/admin/clients", headers={"Authorization": f"Bearer {token}"})
    assert "lacks the scope admin" in error(response, 403, "insufficient_scope")


# Create, read, list


def test_a_created_client_gets_its_secret_once_and_is_usable_at_once(a: AdminApp) -> None:
    response = a.client.post("/admin/clients", headers=a.admin(), json=SERVICE)
    assert response.status_code == 201, response.text
    body = response.json()
    secret = body["client_secret"]
    assert body["client_id"] == "billing" and body["static"] is False and body["version"] == 1
    assert body["client_secret_expires_at"] == 0
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"] == "http://auth.test/admin/clients/billing"
    assert response.headers["cache-control"] == "no-store"
    read = a.client.get("/admin/clients/billing", headers=a.admin())
    assert read.status_code == 200 and secret not in read.text
    assert "client_secret" not in read.json() and "digest" not in read.text
    assert [s["id"] for s in read.json()["secrets"]] == [s["id"] for s in body["secrets"]]
    issued = a.client_token("billing", secret, "read")
    assert issued.status_code == 200, issued.text
    assert issued.json()["scope"] == "read"


def test_an_id_is_generated_when_the_body_has_none(a: AdminApp) -> None:
    body = a.create(**{k: v for k, v in SERVICE.items() if k != "client_id"})
    assert body["client_id"].startswith("cl_")
    assert a.client.get(f"/admin/clients/{body['client_id']}",
                        headers=a.admin()).status_code == 200


def test_static_clients_are_listed_and_read_as_static(a: AdminApp) -> None:
    a.create(**SERVICE)
    listed = a.client.get("/admin/clients", headers=a.admin())
    assert listed.status_code == 200, listed.text
    by_id = {c["client_id"]: c for c in listed.json()["clients"]}
    assert set(by_id) == {ADMIN_ID, STATIC_ID, ENV_ID, "billing"}
    assert by_id[STATIC_ID]["static"] is True and by_id["billing"]["static"] is False
    static = a.client.get(f"/admin/clients/{STATIC_ID}", headers=a.admin())
    assert static.status_code == 200 and static.json()["static"] is True
    assert static.json()["client_name"] == "Static web"
    assert "etag" not in static.headers


def test_paging_walks_every_client_once(a: AdminApp) -> None:
    for i in range(7):
        a.create(**{**SERVICE, "client_id": f"svc-{i}"})
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = a.client.get("/admin/clients", headers=a.admin(), params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["clients"]) <= 2
        seen.extend(c["client_id"] for c in page["clients"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([ADMIN_ID, STATIC_ID, ENV_ID, *(f"svc-{i}" for i in range(7))])
    assert len(seen) == len(set(seen)) and pages == 5
    # Static clients first, then the stored ones.
    assert [s for s in seen[:3]] == sorted([ADMIN_ID, STATIC_ID, ENV_ID])
    for bad in ({"limit": 0}, {"limit": 201}, {"limit": "x"}, {"cursor": "forged"}):
        error(a.client.get("/admin/clients", headers=a.admin(), params=bad), 400,
              "invalid_request")


# Replace and delete


def test_put_replaces_metadata_and_keeps_the_secret(a: AdminApp) -> None:
    created = a.create(**SERVICE)
    view = a.client.get("/admin/clients/billing", headers=a.admin()).json()
    view["client_name"] = "Billing v2"
    response = a.client.put("/admin/clients/billing", headers=a.admin(), json=view)
    assert response.status_code == 200, response.text
    assert response.json()["client_name"] == "Billing v2" and response.json()["version"] == 2
    assert response.headers["etag"] == 'W/"2"' and "client_secret" not in response.json()
    assert a.client_token("billing", created["client_secret"]).status_code == 200


def test_put_is_compare_and_set_on_if_match_or_version(a: AdminApp) -> None:
    a.create(**SERVICE)
    first = a.client.put("/admin/clients/billing", headers={**a.admin(), "If-Match": 'W/"1"'},
                         json={**SERVICE, "client_name": "one"})
    assert first.status_code == 200, first.text
    stale = a.client.put("/admin/clients/billing", headers={**a.admin(), "If-Match": 'W/"1"'},
                         json={**SERVICE, "client_name": "two"})
    error(stale, 412, "precondition_failed")
    stale = a.client.put("/admin/clients/billing", headers=a.admin(),
                         json={**SERVICE, "client_name": "two", "version": 1})
    error(stale, 412, "precondition_failed")
    ok = a.client.put("/admin/clients/billing", headers=a.admin(),
                      json={**SERVICE, "client_name": "two", "version": 2})
    assert ok.status_code == 200 and ok.json()["version"] == 3
    both = a.client.put("/admin/clients/billing", headers={**a.admin(), "If-Match": '"3"'},
                        json={**SERVICE, "version": 2})
    error(both, 400, "invalid_request")
    error(a.client.put("/admin/clients/billing", headers={**a.admin(), "If-Match": "3"},
                       json=SERVICE), 400, "invalid_request")
    assert a.client.get("/admin/clients/billing", headers=a.admin()).json()["client_name"] == "two"


def test_delete_stops_the_client_at_once(a: AdminApp) -> None:
    secret = a.create(**SERVICE)["client_secret"]
    response = a.client.delete("/admin/clients/billing", headers=a.admin())
    assert response.status_code == 204
    error(a.client.get("/admin/clients/billing", headers=a.admin()), 404, "not_found")
    error(a.client.delete("/admin/clients/billing", headers=a.admin()), 404, "not_found")
    assert a.client_token("billing", secret).json()["error"] == "invalid_client"


def test_a_deleted_clients_service_tokens_stop_working_everywhere(a: AdminApp) -> None:
    # Its tokens are not swept: every service guard checks that the token's client exists.
    secret = a.create(**{**SERVICE, "scope": "read scim:read admin"})["client_secret"]
    token = a.client_token("billing", secret, "scim:read admin").json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert a.client.get("/scim/v2/Users", headers=bearer).status_code == 200
    assert a.client.get("/admin/clients", headers=bearer).status_code == 200
    assert a.client.delete("/admin/clients/billing", headers=a.admin()).status_code == 204
    assert a.client.get("/scim/v2/Users", headers=bearer).status_code == 401
    assert a.client.get("/admin/clients", headers=bearer).status_code == 401


@pytest.mark.parametrize("client_id", [STATIC_ID, ENV_ID, ADMIN_ID])
def test_static_clients_cannot_be_changed_here(a: AdminApp, client_id: str) -> None:
    for response in (
        a.client.put(f"/admin/clients/{client_id}", headers=a.admin(),
                     json={**SERVICE, "client_id": client_id}),
        a.client.delete(f"/admin/clients/{client_id}", headers=a.admin()),
        a.client.post(f"/admin/clients/{client_id}/secrets", headers=a.admin()),
        a.client.post("/admin/clients", headers=a.admin(),
                      json={**SERVICE, "client_id": client_id}),
    ):
        description = error(response, 409, response.json()["error"])
        assert response.json()["error"] in ("static_client", "conflict")
        assert "static client" in description
    assert a.client_token(STATIC_ID, STATIC_SECRET).status_code == 400  # no such grant
    assert a.client.get(f"/admin/clients/{client_id}", headers=a.admin()).json()["static"]


# Every bad input


@pytest.mark.parametrize(("body", "status", "code", "says"), [
    ({**SERVICE, "redirect_uri": "https://x.example/cb"}, 400, "invalid_client_metadata",
     "redirect_uri"),
    ({**SERVICE, "grant_types": ["authorization_code"], "redirect_uris": ["/relative"]}, 400,
     "invalid_redirect_uri", "redirect_uris"),
    ({**SERVICE, "grant_types": ["authorization_code"],
      "redirect_uris": ["https://x.example/cb#frag"]}, 400, "invalid_redirect_uri",
     "redirect_uris"),
    ({**SERVICE, "client_name": "nul\x00byte"}, 400, "invalid_client_metadata", "client_name"),
    ({**SERVICE, "scope": "read\x00"}, 400, "invalid_client_metadata", "scope"),
    ({**SERVICE, "client_id": "nul\x00id"}, 400, "invalid_client_metadata", "client_id"),
    ({**SERVICE, "jwks": {"keys": [{"kty": "EC", "kid": "\x00"}]}}, 400,
     "invalid_client_metadata", "jwks"),
    ({**SERVICE, "ke\x00y": 1}, 400, "invalid_client_metadata", "member name"),
    ({**SERVICE, "client_secret": "short"}, 400, "invalid_client_metadata", "client_secret"),
    ({**SERVICE, "token_endpoint_auth_method": "magic"}, 400, "invalid_client_metadata",
     "token_endpoint_auth_method"),
    ({**SERVICE, "access_token_lifetime": 10**30}, 400, "invalid_client_metadata",
     "access_token_lifetime"),
    # An RSA key without its modulus: no assertion could ever be verified with it.
    ({**{k: v for k, v in SERVICE.items() if k != "client_secret"},
      "token_endpoint_auth_method": "private_key_jwt",
      "jwks": {"keys": [{"kty": "RSA", "kid": "k1", "e": "AQAB"}]}}, 400,
     "invalid_client_metadata", "no usable public signature key"),
], ids=["unknown-key", "relative-uri", "fragment-uri", "nul-name", "nul-scope", "nul-id",
        "nul-jwks", "nul-key", "short-secret", "bad-method", "huge-number", "unusable-jwks"])
def test_bad_metadata_is_400_naming_the_key(a: AdminApp, body: dict[str, Any], status: int,
                                             code: str, says: str) -> None:
    assert says in error(a.client.post("/admin/clients", headers=a.admin(), json=body),
                         status, code)
    a.create(**SERVICE)
    put = a.client.put("/admin/clients/billing", headers=a.admin(),
                       json={**body, "client_id": body["client_id"]})
    if body["client_id"] == "billing":
        assert says in error(put, status, code)


def test_a_duplicate_id_is_409(a: AdminApp) -> None:
    a.create(**SERVICE)
    error(a.client.post("/admin/clients", headers=a.admin(), json=SERVICE), 409, "conflict")


def test_bodies_that_are_not_json_objects(a: AdminApp) -> None:
    headers = a.admin()
    error(a.client.post("/admin/clients", headers={**headers, "Content-Type": "text/plain"},
                        content=b"client_id=x"), 415, "unsupported_media_type")
    error(a.client.post("/admin/clients", headers=headers, content=b"client_id=x"), 415,
          "unsupported_media_type")
    json_headers = {**headers, "Content-Type": "application/json"}
    error(a.client.post("/admin/clients", headers=json_headers, content=b"{nope"), 400,
          "invalid_request")
    error(a.client.post("/admin/clients", headers=json_headers, content=b"[1, 2]"), 400,
          "invalid_request")
    error(a.client.post("/admin/clients", headers=json_headers,
                        content=b'{"client_name": "\\ud800"}'), 400, "invalid_request")
    error(a.client.post("/admin/clients", headers=json_headers,
                        content=b"[" * 100_000 + b"]" * 100_000), 400, "invalid_request")
    too_big = json.dumps({**SERVICE, "client_name": "x" * (1024 * 1024)})
    assert a.client.post("/admin/clients", headers=json_headers,
                         content=too_big).status_code == 413


def test_bad_paths_and_ids(a: AdminApp) -> None:
    a.create(**SERVICE)
    error(a.client.get("/admin/clients/ghost", headers=a.admin()), 404, "not_found")
    error(a.client.put("/admin/clients/ghost", headers=a.admin(),
                       json={**SERVICE, "client_id": "ghost"}), 404, "not_found")
    error(a.client.post("/admin/clients/ghost/secrets", headers=a.admin()), 404, "not_found")
    error(a.client.get("/admin/clients/nul%00id", headers=a.admin()), 400, "invalid_request")
    error(a.client.delete("/admin/clients/nul%00id", headers=a.admin()), 400, "invalid_request")
    assert "renamed" in error(a.client.put("/admin/clients/billing", headers=a.admin(),
                                           json={**SERVICE, "client_id": "other"}),
                              400, "invalid_client_metadata")


# Rotation


def test_rotation_keeps_the_old_secret_until_it_is_retired(a: AdminApp) -> None:
    old = a.create(**SERVICE)["client_secret"]
    response = a.client.post("/admin/clients/billing/secrets", headers=a.admin(),
                             json={"retire_old_after": 60})
    assert response.status_code == 201, response.text
    body = response.json()
    new = body["client_secret"]
    assert new != old and body["client_secret_expires_at"] == 0 and body["version"] == 2
    assert [s["expires_at"] for s in body["secrets"]] == [a.clock.now() + 60, None]
    assert a.client_token("billing", old).status_code == 200
    assert a.client_token("billing", new).status_code == 200
    a.clock.advance(61)
    refused = a.client_token("billing", old)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert a.client_token("billing", new).status_code == 200
    read = a.client.get("/admin/clients/billing", headers=a.admin())
    assert new not in read.text and old not in read.text


def test_a_new_secret_with_expires_in_expires(a: AdminApp) -> None:
    a.create(**SERVICE)
    body = a.client.post("/admin/clients/billing/secrets", headers=a.admin(),
                         json={"expires_in": 30}).json()
    assert body["client_secret_expires_at"] == a.clock.now() + 30
    assert a.client_token("billing", body["client_secret"]).status_code == 200
    a.clock.advance(30)
    assert a.client_token("billing", body["client_secret"]).json()["error"] == "invalid_client"


def test_bad_rotation_requests(a: AdminApp) -> None:
    a.create(**SERVICE)
    url = "/admin/clients/billing/secrets"
    for body in ({"expires_in": 0}, {"expires_in": "60"}, {"retire_old_after": -1},
                 {"retire_old_after": True}, {"expires_in": 10**12}, {"rotate": "now"}):
        error(a.client.post(url, headers=a.admin(), json=body), 400, "invalid_request")
    public = a.create(**PUBLIC)
    assert "uses no secret" in error(a.client.post(
        f"/admin/clients/{public['client_id']}/secrets", headers=a.admin()), 409, "conflict")


# Several instances


@pytest.fixture
def two(store: StoreBackend, tmp_path: Path) -> Iterator[tuple[AdminApp, AdminApp]]:
    clock = FakeClock(int(time.time()))
    with admin_app(store, tmp_path, clock=clock) as first, \
            admin_app(store, tmp_path, clock=clock) as second:
        yield first, second


def test_a_client_created_on_one_instance_is_usable_at_once_on_another(
    two: tuple[AdminApp, AdminApp]
) -> None:
    first, second = two
    secret = first.create(**SERVICE)["client_secret"]
    issued = second.client_token("billing", secret, "read")
    assert issued.status_code == 200, issued.text
    # A rotation on the second instance retires the secret on the first at once.
    second.client.post("/admin/clients/billing/secrets", headers=second.admin(),
                       json={"retire_old_after": 0})
    assert first.client_token("billing", secret).json()["error"] == "invalid_client"


def test_a_stored_public_client_signs_a_user_in_on_another_instance(
    two: tuple[AdminApp, AdminApp]
) -> None:
    first, second = two
    first.add_user("alice")
    client_id = first.create(**PUBLIC)["client_id"]
    token = second.sign_in_with(client_id)
    assert token.status_code == 200, token.text
    assert token.json()["id_token"] and "openid" in token.json()["scope"]
    # Deleted on one instance, it cannot start a sign-in on the other.
    first.client.delete(f"/admin/clients/{client_id}", headers=first.admin())
    page = second.client.get("/oauth/authorize", params={
        "response_type": "code", "client_id": client_id, "redirect_uri": PUBLIC_REDIRECT,
        "scope": "openid", "code_challenge": "x" * 43, "code_challenge_method": "S256"},
        follow_redirects=False)
    assert page.status_code == 400 and "code=" not in page.headers.get("location", "")


def test_concurrent_puts_with_the_same_version_exactly_one_wins(
    two: tuple[AdminApp, AdminApp]
) -> None:
    first, second = two
    first.create(**SERVICE)
    instances = [first, second] * 3

    def put(i: int) -> int:
        instance = instances[i]
        return instance.client.put(
            "/admin/clients/billing", headers={**instance.admin(), "If-Match": 'W/"1"'},
            json={**SERVICE, "client_name": f"writer {i}"}).status_code

    with ThreadPoolExecutor(len(instances)) as pool:
        statuses = sorted(pool.map(put, range(len(instances))))
    assert statuses == [200] + [412] * (len(instances) - 1)
    final = first.client.get("/admin/clients/billing", headers=first.admin()).json()
    assert final["version"] == 2 and final["client_name"].startswith("writer ")


# Security events, OpenAPI


@pytest.fixture
def logs(a: AdminApp) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(load_settings({"LOG_FORMAT": "json"}), stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_every_change_is_one_security_event_line(a: AdminApp, logs: io.StringIO) -> None:
    secret = a.create(**SERVICE)["client_secret"]
    a.client.put("/admin/clients/billing", headers=a.admin(), json={**SERVICE, "scope": "read"})
    rotated = a.client.post("/admin/clients/billing/secrets", headers=a.admin()).json()
    a.client.delete("/admin/clients/billing", headers=a.admin())
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    events = [line for line in lines if line.get("logger") == "auth_service.events"
              and line["event"].startswith("client_")]
    assert [e["event"] for e in events] == ["client_created", "client_updated",
                                            "client_secret_added", "client_deleted"]
    assert all(e["client_id"] == "billing" and e["actor"] == ADMIN_ID for e in events)
    assert events[2]["secret_id"] == rotated["secret_id"]
    assert secret not in logs.getvalue() and rotated["client_secret"] not in logs.getvalue()


def test_the_admin_api_is_in_the_openapi_document(a: AdminApp) -> None:
    document = a.client.get("/schema/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/admin/clients"]) >= {"get", "post"}
    assert set(paths["/admin/clients/{client_id}"]) >= {"get", "put", "delete"}
    create = paths["/admin/clients"]["post"]
    assert create["operationId"] == "createClient"
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert "redirect_uris" in schema["properties"]
    assert "post" in paths["/admin/clients/{client_id}/secrets"]


class UnavailableClients:
    """A client part whose database is down (what the adapters raise: StoreUnavailable)."""

    def __getattr__(self, name: str) -> Any:
        async def fail(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable("the database is unavailable or failed (SQLSTATE 08006)")

        return fail


def test_a_store_that_cannot_answer_is_503_without_internals(a: AdminApp) -> None:
    headers = a.admin()
    services = a.app.state.services
    a.app.state.services = dataclasses.replace(services, client_ports=dataclasses.replace(
        services.client_ports, store=UnavailableClients()))
    response = a.client.post("/admin/clients", headers=headers, json=SERVICE)
    error(response, 503, "temporarily_unavailable")
    assert response.headers["retry-after"] == "1" and "SQLSTATE" not in response.text


def test_an_id_token_alg_the_server_has_no_key_for_is_400(a: AdminApp) -> None:
    body = {**SERVICE, "grant_types": ["authorization_code"], "scope": "openid",
            "redirect_uris": ["https://billing.example/cb"],
            "id_token_signed_response_alg": "ES256"}
    assert "no ES256 signing key" in error(
        a.client.post("/admin/clients", headers=a.admin(), json=body), 400,
        "invalid_client_metadata")
    created = a.client.post("/admin/clients", headers=a.admin(),
                            json={**body, "id_token_signed_response_alg": "RS256"})
    assert created.status_code == 201, created.text
    assert created.json()["id_token_signed_response_alg"] == "RS256"

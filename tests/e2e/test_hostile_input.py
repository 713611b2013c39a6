"""Hostile input: malformed bodies, bad JSON, huge headers, non-UTF-8, SQL-like filters and
wrong content types. Each gets a 4xx with a clear message and no internal names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from domain.entities import AccessToken
from domain.tokens import hash_token, token_display
from tests.e2e.ops_support import SERVICE_ID, SERVICE_SECRET, ops_app
from tests.e2e.signin_flow import Harness

INTERNAL_NAMES = ("asyncpg", "sqlalchemy", "redis", "litestar", "traceback", "msgspec",
                  "exception", "file \"")
SCIM_JSON = "application/scim+json"
FORM = "application/x-www-form-urlencoded"
AUTH = (SERVICE_ID, SERVICE_SECRET)


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    # One app for the module: every test here is a refusal that changes no state.
    with ops_app(tmp_path_factory.mktemp("hostile")) as running:
        yield running


@pytest.fixture(scope="module")
def scim(h: Harness) -> dict[str, str]:
    """Headers with a bearer token allowed to read and write SCIM."""
    value = "tk_hostile" + "x" * 40
    now = h.clock.now()
    record = AccessToken(token_hash=hash_token(value), token_display=token_display(value),
                         active=True, scope="scim:read scim:write", client_id=SERVICE_ID,
                         exp=now + 3600, iat=now)
    h.run(h.store.save_tokens(record, None, now))
    return {"Authorization": f"Bearer {value}"}


def assert_clear_4xx(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A 4xx (one of ``statuses`` when given) with a JSON error that explains itself."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.text)
    lowered = response.text.lower()
    for name in INTERNAL_NAMES:
        assert name not in lowered, (name, response.text)
    body: dict[str, Any] = response.json()
    message = body.get("error_description") or body.get("detail") or ""
    assert body.get("error") or body.get("scimType") or message, body
    if "error_description" in body or "detail" in body:
        assert len(message) > 5
    return body


# Malformed bodies and wrong content types on the OAuth endpoints


@pytest.mark.parametrize("body", [
    b"%%%&&&==", b"grant_type", b"=&=&=", b"grant_type=client_credentials&grant_type=password",
    b"\x00\x01\x02", b"grant_type=%ZZ",
])
def test_malformed_token_forms(h: Harness, body: bytes) -> None:
    response = h.client.post("/oauth/token", content=body, auth=AUTH,
                             headers={"content-type": FORM})
    assert_clear_4xx(response, 400)


@pytest.mark.parametrize("body", [b"grant_type=\xff\xfe\xfd", b"client_id=\xc3\x28&x=1"])
def test_non_utf8_token_forms(h: Harness, body: bytes) -> None:
    response = h.client.post("/oauth/token", content=body, headers={"content-type": FORM})
    assert_clear_4xx(response, 400, 401)


@pytest.mark.parametrize("content_type", [
    "application/json", "text/plain", "application/xml", "multipart/form-data; boundary=x", "",
])
def test_token_endpoint_wants_a_form(h: Harness, content_type: str) -> None:
    response = h.client.post("/oauth/token", content=b'{"grant_type":"client_credentials"}',
                             auth=AUTH, headers={"content-type": content_type})
    assert_clear_4xx(response, 400, 415)


DEEP = b'{"token": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize("body", [b"{", b"[1,2]", b'"token"', b"null", b'{"token": 5}', DEEP])
def test_bad_json_on_introspection(h: Harness, body: bytes) -> None:
    response = h.client.post("/oauth/introspect", content=body, auth=AUTH,
                             headers={"content-type": "application/json"})
    assert_clear_4xx(response, 400)


# SCIM: bad JSON, wrong types, wrong content types, SQL-like filters


@pytest.mark.parametrize("body", [
    b'{"userName": ', b"[]", b"42", b'{"userName": 42}', b'{"schemas": "nope"}',
    b"\xff\xfe{}", b"[" * 5000 + b"]" * 5000, b'{"userName": "a", "emails": {"value": 1}}',
    b'{"userName": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
])
def test_bad_scim_bodies(h: Harness, scim: dict[str, str], body: bytes) -> None:
    response = h.client.post("/scim/v2/Users", content=body,
                             headers={**scim, "content-type": SCIM_JSON})
    body_json = assert_clear_4xx(response, 400)
    assert body_json.get("schemas") == ["urn:ietf:params:scim:api:messages:2.0:Error"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/xml"])
def test_scim_wrong_content_type(h: Harness, scim: dict[str, str], content_type: str) -> None:
    response = h.client.post("/scim/v2/Users", content=b"userName=alice",
                             headers={**scim, "content-type": content_type})
    assert_clear_4xx(response, 400, 415)


@pytest.mark.parametrize("text", [
    "userName eq x' OR 1=1 --",
    "userName eq \"x\" OR 1=1 --",
    "userName eq \"x\"; DROP TABLE users; --",
    "1=1",
    "userName eq \"unterminated",
    "(userName eq \"a\"",
    "userName zz \"a\"",
    "userName[value eq \"a\"] eq \"b\"",
    "a" * 5000,
])
def test_malformed_and_injection_like_filters_are_invalid(
    h: Harness, scim: dict[str, str], text: str
) -> None:
    response = h.client.get("/scim/v2/Users", params={"filter": text}, headers=scim)
    body = assert_clear_4xx(response, 400)
    assert body.get("scimType") in ("invalidFilter", "invalidValue", "invalidSyntax")


@pytest.mark.parametrize("value", ["x' OR 1=1 --", "x\" or \"1\"=\"1", "%' OR '%'='",
                                   "'; DROP TABLE users; --", "\\\" OR 1=1"])
def test_injection_like_values_in_valid_filters_match_nothing(
    h: Harness, scim: dict[str, str], value: str
) -> None:
    created = h.client.post("/scim/v2/Users", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice"},
        headers={**scim, "content-type": SCIM_JSON})
    assert created.status_code in (201, 409)
    quoted = json.dumps(value)
    for operator in ("eq", "co", "sw", "ew"):
        response = h.client.get("/scim/v2/Users",
                                params={"filter": f"userName {operator} {quoted}"},
                                headers=scim)
        assert response.status_code == 200, response.text
        assert response.json()["totalResults"] == 0


@pytest.mark.parametrize("params", [
    {"count": "99999999999999999999999"}, {"startIndex": "-5"}, {"count": "abc"},
    {"startIndex": "1e9"},
])
def test_odd_pagination_is_a_client_error_or_clamped(
    h: Harness, scim: dict[str, str], params: dict[str, str]
) -> None:
    response = h.client.get("/scim/v2/Users", params=params, headers=scim)
    if response.status_code == 200:
        assert response.json()["totalResults"] >= 0
    else:
        assert_clear_4xx(response, 400)


def test_non_utf8_query_string(h: Harness, scim: dict[str, str]) -> None:
    response = h.client.get("/scim/v2/Users?filter=userName%20eq%20%22%FF%FE%22", headers=scim)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert_clear_4xx(response)


# Huge and odd headers


@pytest.mark.parametrize("header", ["authorization", "x-request-id", "cookie", "content-type"])
def test_huge_headers(h: Harness, header: str) -> None:
    value = "Bearer " + "A" * 65536 if header == "authorization" else "v" * 65536
    response = h.client.post("/oauth/introspect", content=b"token=tk_x",
                             headers={header: value} if header == "content-type"
                             else {header: value, "content-type": FORM})
    assert_clear_4xx(response)
    assert len(response.headers["x-request-id"]) <= 128


@pytest.mark.parametrize("authorization", [
    "Basic !!!notbase64", "Basic " + "QQ==" * 10, "Basic w6k6w6k=", "Bearer", "Negotiate abc",
    "Basic " + "YTo=" * 1,
])
def test_broken_client_authentication(h: Harness, authorization: str) -> None:
    response = h.client.post("/oauth/token", data={"grant_type": "client_credentials"},
                             headers={"authorization": authorization})
    assert_clear_4xx(response, 400, 401)


def test_huge_bearer_token_on_scim(h: Harness) -> None:
    response = h.client.get("/scim/v2/Users", headers={"Authorization": "Bearer " + "t" * 100000})
    assert 400 <= response.status_code < 500
    assert "traceback" not in response.text.lower()

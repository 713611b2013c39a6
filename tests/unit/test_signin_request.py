"""Authorization request validation: what is shown, what is redirected, and the redirect URL."""

from __future__ import annotations

import msgspec
import pytest

from adapters.jose_signer import JoseSigner
from adapters.memory.store import MemoryStore
from domain.authorization_request import (
    AuthorizationRequest,
    RedirectError,
    ShowError,
    redirect_location,
    validate_authorization_request,
)
from domain.client_directory import ClientDirectory
from domain.clients import ClientRegistry
from domain.scopes import SERVICE_SCOPES
from tests.unit.oauth_doubles import CONFIDENTIAL, LEGACY, PUBLIC, REDIRECT

CLIENTS = ClientDirectory(ClientRegistry([CONFIDENTIAL, PUBLIC, LEGACY]), MemoryStore())
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def _params(**overrides: str | None) -> dict[str, list[str]]:
    base: dict[str, str | None] = {
        "response_type": "code", "client_id": PUBLIC.client_id, "redirect_uri": REDIRECT,
        "scope": "openid profile", "state": "s", "nonce": "n", "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    base.update(overrides)
    return {k: [v] for k, v in base.items() if v is not None}


async def test_a_valid_request() -> None:
    outcome = await validate_authorization_request(CLIENTS, _params(scope="openid openid profile"))
    assert outcome == (
        AuthorizationRequest(client_id=PUBLIC.client_id, redirect_uri=REDIRECT,
                             scope="openid profile", state="s", nonce="n",
                             code_challenge=CHALLENGE, code_challenge_method="S256"))


async def test_confidential_client_that_opted_out_may_skip_pkce() -> None:
    outcome = await validate_authorization_request(CLIENTS, _params(
        client_id=LEGACY.client_id, code_challenge=None, code_challenge_method=None))
    assert isinstance(outcome, AuthorizationRequest) and outcome.code_challenge is None


async def test_confidential_client_needs_pkce_by_default() -> None:
    outcome = await validate_authorization_request(CLIENTS, _params(
        client_id=CONFIDENTIAL.client_id, code_challenge=None, code_challenge_method=None))
    assert isinstance(outcome, RedirectError)
    assert (outcome.error, outcome.description) == (
        "invalid_request", "PKCE (code_challenge with S256) is required")


@pytest.mark.parametrize("client_id", [PUBLIC.client_id, CONFIDENTIAL.client_id])
@pytest.mark.parametrize("scope", ["openid scim:write", "scim:read", "openid admin"])
async def test_a_service_scope_is_invalid_scope_even_for_a_client_that_holds_it(
    client_id: str, scope: str
) -> None:
    # Both clients may hold scim:read, scim:write and admin for client_credentials; a user
    # still cannot delegate them.
    holding = ClientDirectory(ClientRegistry([
        msgspec.structs.replace(client, scopes=client.scopes | SERVICE_SCOPES)
        for client in (PUBLIC, CONFIDENTIAL)
    ]), MemoryStore())
    outcome = await validate_authorization_request(
        holding, _params(client_id=client_id, scope=scope))
    assert isinstance(outcome, RedirectError) and outcome.error == "invalid_scope"
    assert "client_credentials" in outcome.description


@pytest.mark.parametrize("params", [
    _params(client_id=None), _params(client_id="ghost"), _params(redirect_uri=None),
    _params(redirect_uri=REDIRECT + "/"), _params(redirect_uri=REDIRECT.replace("https", "http")),
    {**_params(), "client_id": [PUBLIC.client_id, CONFIDENTIAL.client_id]},
])
async def test_errors_before_the_redirect_uri_is_trusted_are_shown(
    params: dict[str, list[str]]
) -> None:
    assert isinstance(await validate_authorization_request(CLIENTS, params), ShowError)


@pytest.mark.parametrize(("overrides", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": None}, "invalid_request"),
    ({"code_challenge": "a" * 129}, "invalid_request"),
    # "$" would let a trailing newline through, to fail only after the user signed in
    ({"code_challenge": CHALLENGE + "\n"}, "invalid_request"),
    ({"scope": "openid scim:write"}, "invalid_scope"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"state": "x" * 3000}, "invalid_request"),
])
async def test_later_errors_are_redirected_with_state(
    overrides: dict[str, str | None], error: str
) -> None:
    outcome = await validate_authorization_request(CLIENTS, _params(**overrides))
    assert isinstance(outcome, RedirectError) and outcome.error == error
    assert outcome.redirect_uri == REDIRECT


async def test_a_repeated_parameter_is_invalid_request() -> None:
    outcome = await validate_authorization_request(
        CLIENTS, {**_params(), "scope": ["openid", "email"]})
    assert isinstance(outcome, RedirectError) and outcome.error == "invalid_request"


async def test_redirect_location_keeps_the_registered_query_and_encodes_values() -> None:
    location = redirect_location("https://a.example/cb?tenant=1", {
        "code": "ac_x", "state": "a b&c", "error": None})
    assert location == "https://a.example/cb?tenant=1&code=ac_x&state=a+b%26c"


@pytest.mark.parametrize(("prompt", "expected"), [
    ("login", ("login",)), ("consent login login", ("consent", "login")),
    ("select_account", ("select_account",)), ("none", ("none",)), ("", ()),
])
async def test_prompt_values_are_parsed(prompt: str, expected: tuple[str, ...]) -> None:
    outcome = await validate_authorization_request(CLIENTS, _params(prompt=prompt))
    assert isinstance(outcome, AuthorizationRequest) and outcome.prompt == expected


@pytest.mark.parametrize("overrides", [
    {"prompt": "none consent"}, {"prompt": "login bogus"}, {"max_age": "-5"},
    {"max_age": "1.5"}, {"max_age": "12345678901"}, {"id_token_hint": "x.y.z"},
])
async def test_bad_oidc_parameters_are_invalid_request(overrides: dict[str, str]) -> None:
    outcome = await validate_authorization_request(CLIENTS, _params(**overrides))
    assert isinstance(outcome, RedirectError) and outcome.error == "invalid_request"
    assert outcome.state == "s"


async def test_max_age_login_hint_and_acr_values_are_kept() -> None:
    outcome = await validate_authorization_request(CLIENTS, _params(
        max_age="300", login_hint="alice@example.test", acr_values="urn:x mfa mfa"))
    assert isinstance(outcome, AuthorizationRequest)
    assert outcome.max_age == 300 and outcome.login_hint == "alice@example.test"
    assert outcome.acr_values == ("urn:x", "mfa") and outcome.wants_mfa


async def test_an_id_token_hint_gives_its_subject_only_when_it_is_ours() -> None:
    signer = JoseSigner.generated()
    ours = signer.sign({"iss": "https://idp.test", "sub": "user-7", "exp": 1})
    outcome = await validate_authorization_request(
        CLIENTS, _params(id_token_hint=ours), signer=signer, issuer="https://idp.test")
    assert isinstance(outcome, AuthorizationRequest) and outcome.hint_sub == "user-7"
    for token, issuer in ((ours, "https://other.test"),
                          (JoseSigner.generated().sign({"iss": "https://idp.test",
                                                        "sub": "user-7"}), "https://idp.test")):
        refused = await validate_authorization_request(
            CLIENTS, _params(id_token_hint=token), signer=signer, issuer=issuer)
        assert isinstance(refused, RedirectError) and refused.error == "invalid_request"

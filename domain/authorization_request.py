"""Validating an authorization request (RFC 6749 4.1.1, RFC 7636, OpenID Connect Core 3.1.2).

Validation runs in two phases, because where an error may be sent depends on it: until the
client and its exact redirect URI are known, an error is shown to the user (a redirect
would make the server an open redirector); afterwards it goes back to the client by
redirect, with ``error`` and ``state`` (RFC 6749 4.1.2.1).

The OpenID Connect parameters that steer single sign-on (Core 3.1.2.1: ``prompt``,
``max_age``, ``id_token_hint``, ``login_hint``, ``acr_values``) are parsed here too; what
they mean against a browser session is :mod:`domain.sso`'s to decide.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

import msgspec

from domain.client_directory import ClientDirectory
from domain.clients import GRANT_AUTHORIZATION_CODE
from domain.redirects import redirect_uri_registered
from domain.resources import ResourceRefused, ResourceServers, parse_resources
from domain.scopes import service_scopes_in
from domain.sessions import ACR_MFA
from domain.text import is_storable
from ports.security import IdTokenSigner

#: Longest value accepted for any parameter; longer is a malformed request.
MAX_PARAMETER_LENGTH = 2048
_PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_SINGLE_VALUED = (
    "client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
    "code_challenge", "code_challenge_method", "response_mode", "prompt", "max_age",
    "id_token_hint", "login_hint", "acr_values",
)
#: An ID token with many groups is longer than any other parameter may be.
_LONGER = {"id_token_hint": 16384}
_MAX_AGE = re.compile(r"[0-9]{1,10}")

PROMPT_NONE = "none"
PROMPT_LOGIN = "login"
PROMPT_CONSENT = "consent"
PROMPT_SELECT_ACCOUNT = "select_account"
#: Discovery ``prompt_values_supported``. ``select_account`` is answered with a sign-in
#: (there is one session per browser, so there is no account to choose between).
PROMPT_VALUES: tuple[str, ...] = (PROMPT_NONE, PROMPT_LOGIN, PROMPT_CONSENT,
                                  PROMPT_SELECT_ACCOUNT)


class AuthorizationRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A valid request: the client, its exact redirect URI, and what it asked for."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    #: The ``prompt`` values, in the order given, without duplicates.
    prompt: tuple[str, ...] = ()
    #: ``max_age`` in seconds: a session signed in longer ago than that signs in again.
    max_age: int | None = None
    #: The ``sub`` of the ``id_token_hint`` (checked; the token itself is not kept).
    hint_sub: str | None = None
    #: ``login_hint``: prefills the user name.
    login_hint: str | None = None
    #: ``acr_values``, in the order given (unknown values are kept and ignored).
    acr_values: tuple[str, ...] = ()
    #: The RFC 8707 ``resource`` values: the resource servers the grant is for.
    resources: tuple[str, ...] = ()

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split())

    @property
    def wants_mfa(self) -> bool:
        """``acr_values`` names the two-factor class: a password-only session steps up."""
        return ACR_MFA in self.acr_values


class ShowError(msgspec.Struct, frozen=True):
    """An error found before the redirect URI was trusted: show it, never redirect."""

    description: str


class RedirectError(msgspec.Struct, frozen=True):
    """An error to send back to the client's (validated) redirect URI."""

    redirect_uri: str
    error: str
    description: str
    state: str | None


async def validate_authorization_request(
    clients: ClientDirectory,
    params: Mapping[str, Sequence[str]],
    *,
    signer: IdTokenSigner | None = None,
    issuer: str = "",
    resource_servers: ResourceServers | None = None,
) -> AuthorizationRequest | ShowError | RedirectError:
    """Check the request's parameters (each name mapped to every value it was given).

    The redirect URI must be one the client registered, compared as exact strings: no
    prefix, suffix, case or normalisation games; only the port of a loopback IP literal
    registered without one may vary (:mod:`domain.redirects`). PKCE ``S256`` is required from every
    client except a confidential one that opted out, and is the only method accepted from
    anyone (``plain`` is refused). Service scopes are ``invalid_scope``: a user cannot
    delegate them, whatever the client may hold for itself. Each ``resource`` (RFC 8707,
    repeatable) must name one of ``resource_servers``, else ``invalid_target``.

    ``prompt`` takes the values of :data:`PROMPT_VALUES`, ``none`` alone; ``max_age`` is a
    number of seconds; ``id_token_hint`` must be an ID token ``signer`` made (expired is
    fine) for ``issuer``, with a ``sub``. Any of these wrong is ``invalid_request``.
    """
    client_ids = params.get("client_id", ())
    if len(client_ids) != 1 or not client_ids[0]:
        return ShowError("The request has no client_id, or more than one.")
    client = await clients.find(client_ids[0])
    if client is None:
        return ShowError("The application that sent you here is not registered.")
    redirect_uris = params.get("redirect_uri", ())
    if len(redirect_uris) != 1 or not redirect_uris[0]:
        return ShowError("The request has no redirect_uri, or more than one.")
    redirect_uri = redirect_uris[0]
    if not redirect_uri_registered(client.redirect_uris, redirect_uri):
        return ShowError("The redirect_uri is not registered for this application.")

    states = params.get("state", ())
    state = states[0] if len(states) == 1 and states[0] else None

    def fail(error: str, description: str) -> RedirectError:
        return RedirectError(redirect_uri, error, description, state)

    for name in _SINGLE_VALUED:
        values = params.get(name, ())
        if len(values) > 1:
            return fail("invalid_request", f"{name} must not be repeated")
        if values and len(values[0]) > _LONGER.get(name, MAX_PARAMETER_LENGTH):
            return fail("invalid_request", f"{name} is too long")
        if values and not is_storable(values[0]):
            # The nonce and the scope are stored with the code; PostgreSQL refuses a NUL.
            return fail("invalid_request", f"{name} contains a character that is not allowed")
    if "request" in params:
        return fail("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        return fail("request_uri_not_supported", "request_uri is not supported")

    def one(name: str) -> str | None:
        values = params.get(name, ())
        return values[0] if values and values[0] else None

    response_type = one("response_type")
    if response_type is None:
        return fail("invalid_request", "response_type is required")
    if response_type != "code":
        return fail("unsupported_response_type", "only response_type=code is supported")
    if not client.allows_grant(GRANT_AUTHORIZATION_CODE):
        return fail("unauthorized_client", "this client may not use the authorization code flow")
    response_mode = one("response_mode")
    if response_mode not in (None, "query"):
        return fail("invalid_request", "only response_mode=query is supported")

    scope_text = one("scope")
    if scope_text is None:
        return fail("invalid_scope", "scope is required")
    scopes = list(dict.fromkeys(scope_text.split()))
    if not scopes or not all(_SCOPE_TOKEN.fullmatch(s) for s in scopes):
        return fail("invalid_scope", "scope is malformed")
    if not client.allows_scopes(scopes):
        return fail("invalid_scope", "a requested scope is not allowed for this client")
    service = service_scopes_in(scopes)
    if service:
        return fail("invalid_scope", f"{' '.join(service)} cannot be granted by a user; "
                    "a service gets it with client_credentials")

    challenge = one("code_challenge")
    method = one("code_challenge_method")
    if challenge is None:
        if method is not None:
            return fail("invalid_request", "code_challenge_method without code_challenge")
        if client.needs_pkce:
            return fail("invalid_request", "PKCE (code_challenge with S256) is required")
    else:
        if method != "S256":
            return fail("invalid_request", "code_challenge_method must be S256")
        if not _PKCE_CHALLENGE.fullmatch(challenge):
            return fail("invalid_request", "code_challenge is malformed")

    try:
        resources = parse_resources(params.get("resource", ()))
        servers = resource_servers if resource_servers is not None else ResourceServers()
        for uri in resources:
            await servers.server(uri)
    except ResourceRefused as exc:
        return fail(exc.error, exc.description)


    prompt = tuple(dict.fromkeys((one("prompt") or "").split()))
    unknown = [p for p in prompt if p not in PROMPT_VALUES]
    if unknown:
        return fail("invalid_request", f"prompt={unknown[0]} is not supported")
    if PROMPT_NONE in prompt and len(prompt) > 1:
        return fail("invalid_request", "prompt=none cannot be combined with another value")
    max_age_text = one("max_age")
    if max_age_text is not None and not _MAX_AGE.fullmatch(max_age_text):
        return fail("invalid_request", "max_age must be a number of seconds")
    hint = one("id_token_hint")
    hint_sub: str | None = None
    if hint is not None:
        hint_sub = _hint_subject(signer, issuer, hint)
        if hint_sub is None:
            return fail("invalid_request", "id_token_hint is not an ID token from this server")

    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=" ".join(scopes),
        state=state,
        nonce=one("nonce"),
        code_challenge=challenge,
        code_challenge_method=method if challenge is not None else None,
        prompt=prompt,
        max_age=int(max_age_text) if max_age_text is not None else None,
        hint_sub=hint_sub,
        login_hint=one("login_hint"),
        acr_values=tuple(dict.fromkeys((one("acr_values") or "").split())),
        resources=resources,
    )


def _hint_subject(signer: IdTokenSigner | None, issuer: str, hint: str) -> str | None:
    """The ``sub`` of an ID token we issued (any expiry: OIDC Core 3.1.2.1), or None."""
    claims = signer.verify(hint) if signer is not None else None
    if claims is None or claims.get("iss") != issuer:
        return None
    # A logout token is signed with the same key and also has a sub; it is no ID token.
    if "events" in claims:
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) and sub else None


def redirect_location(redirect_uri: str, params: Mapping[str, str | None]) -> str:
    """``redirect_uri`` with ``params`` (None values left out) added to its query.

    A query already in the registered URI is kept (RFC 6749 3.1.2). The URI is extended as
    the text it is, never parsed and rebuilt, so that every scheme (a native app's
    ``com.example.app:/cb`` as much as https) reaches the client exactly as registered.
    Registered URIs have no fragment (RFC 6749 3.1.2); an empty one is dropped.
    """
    redirect_uri = redirect_uri.partition("#")[0]
    added = urlencode({k: v for k, v in params.items() if v is not None})
    if "?" not in redirect_uri:
        return f"{redirect_uri}?{added}"
    if redirect_uri.endswith(("?", "&")):
        return redirect_uri + added
    return f"{redirect_uri}&{added}"

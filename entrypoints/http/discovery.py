"""Discovery metadata (OIDC Discovery 1.0, RFC 8414) and the JWKS.

The metadata lists what this server implements and nothing more. It depends only on the
settings, the client registry and the signer, all fixed at start-up.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get

from domain.authorization_request import PROMPT_VALUES
from domain.client_assertion import PUBLIC_KEY_ALGORITHMS, SECRET_ALGORITHMS
from domain.clients import (
    AUTH_BASIC,
    AUTH_METHODS,
    AUTH_POST,
    AUTH_PRIVATE_KEY_JWT,
    AUTH_SECRET_JWT,
    GRANT_TYPES,
)
from domain.dpop import DPOP_ALGORITHMS
from domain.oauth import PKCE_S256
from domain.sessions import ACR_VALUES
from entrypoints.http.services import Services, ServicesDependency

#: Claims of our ID tokens. The userinfo endpoint may extend this list with its own claims.
ID_TOKEN_CLAIMS = (
    "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "at_hash",
    "sid", "acr",
)
#: Claims the userinfo endpoint can release (``entrypoints.http.userinfo.user_claims``).
USERINFO_CLAIMS = (
    "preferred_username", "name", "given_name", "family_name", "email", "email_verified",
    "groups",
)
_CACHE = {"Cache-Control": "public, max-age=300"}
_ASSERTION_ALGORITHMS = [*PUBLIC_KEY_ALGORITHMS, *SECRET_ALGORITHMS]


def discovery_document(services: Services) -> dict[str, Any]:
    """The metadata document, served at both well-known paths."""
    base = services.settings.external_base_url
    scopes = set(services.settings.allowed_scopes)
    for client in services.clients.static:
        scopes.update(client.scopes)
    document: dict[str, Any] = {
        "issuer": services.settings.issuer,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "userinfo_endpoint": f"{base}/oauth/userinfo",
        "jwks_uri": f"{base}/jwks.json",
        "scopes_supported": sorted(scopes),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "code_challenge_methods_supported": [PKCE_S256],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": [
            AUTH_BASIC, AUTH_POST, AUTH_SECRET_JWT, AUTH_PRIVATE_KEY_JWT],
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        # The algorithms of private_key_jwt and client_secret_jwt assertions (RFC 8414).
        "token_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGORITHMS,
        "introspection_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGORITHMS,
        "revocation_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGORITHMS,
        # Every algorithm a loaded key signs with (SIGNING_KEY_FILE), RS256 first when held:
        # it is what a client without id_token_signed_response_alg gets.
        "id_token_signing_alg_values_supported": sorted(
            services.signer.algorithms, key=lambda alg: alg != "RS256"),
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
        "introspection_signing_alg_values_supported": [services.signer.algorithm],
        "subject_types_supported": ["public"],
        "claims_supported": [*ID_TOKEN_CLAIMS, *USERINFO_CLAIMS],
        # RFC 9207: every authorization response (success and error) carries ``iss``.
        "authorization_response_iss_parameter_supported": True,
        # OIDC Discovery defaults this to true when omitted; request_uri is refused.
        "request_uri_parameter_supported": False,
        "end_session_endpoint": f"{base}/oauth/logout",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "acr_values_supported": list(ACR_VALUES),
        "prompt_values_supported": list(PROMPT_VALUES),
        "device_authorization_endpoint": f"{base}/oauth/device_authorization",
    }
    if services.settings.client_registration != "off":
        document["registration_endpoint"] = f"{base}/oauth/register"
    return document


class DiscoveryController(Controller):
    """The two well-known metadata documents and the public signing keys."""

    tags = ["discovery"]

    @get(
        "/.well-known/openid-configuration",
        operation_id="openid_configuration",
        summary="OpenID Connect Discovery metadata",
    )
    async def openid_configuration(self, services: ServicesDependency) -> Response[dict[str, Any]]:
        return Response(discovery_document(services), headers=_CACHE)

    @get(
        "/.well-known/oauth-authorization-server",
        operation_id="oauth_authorization_server",
        summary="OAuth 2.0 Authorization Server Metadata (RFC 8414)",
    )
    async def oauth_authorization_server(
        self,
        services: ServicesDependency,
    ) -> Response[dict[str, Any]]:
        return Response(discovery_document(services), headers=_CACHE)

    @get("/jwks.json", operation_id="jwks", summary="Public ID-token signing keys (JWK Set)")
    async def jwks(self, services: ServicesDependency) -> Response[dict[str, Any]]:
        return Response(services.signer.jwks(), headers=_CACHE)

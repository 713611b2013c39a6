"""What an access token's ``token_binding`` (and a refresh token's ``binding``) holds.

A DPoP binding (RFC 9449) is ``jkt:`` followed by the RFC 7638 SHA-256 thumbprint of the
client's public key. Any other value is what the column held before DPoP: a certificate
thumbprint (RFC 8705 ``x5t#S256``). Thumbprints are base64url, which has no ``:``, so the
prefix cannot be mistaken for either.
"""

from __future__ import annotations

DPOP_PREFIX = "jkt:"
#: ``token_type`` of a DPoP-bound access token (RFC 9449 section 5); otherwise ``Bearer``.
DPOP = "DPoP"
BEARER = "Bearer"


def dpop_binding(jkt: str) -> str:
    """The stored binding of a token bound to the key with thumbprint ``jkt``."""
    return DPOP_PREFIX + jkt


def bound_jkt(binding: str | None) -> str | None:
    """The DPoP key thumbprint a binding names, or None (no binding, or another kind)."""
    if binding is not None and binding.startswith(DPOP_PREFIX):
        return binding[len(DPOP_PREFIX):]
    return None


def confirmation(binding: str | None) -> dict[str, str] | None:
    """The ``cnf`` claim (RFC 7800) of a binding: ``{"jkt": ...}`` for DPoP,
    ``{"x5t#S256": ...}`` for a value from before DPoP, None without one."""
    if not binding:
        return None
    jkt = bound_jkt(binding)
    return {"jkt": jkt} if jkt is not None else {"x5t#S256": binding}


def token_type(binding: str | None) -> str:
    """The ``token_type`` of an access token with this binding."""
    return DPOP if bound_jkt(binding) is not None else BEARER

"""How token values are stored and shown: SHA-256 hex digests, and a short display prefix."""

from __future__ import annotations

import hashlib

ACCESS_TOKEN_PREFIX = "tk_"
REFRESH_TOKEN_PREFIX = "rt_"
CODE_PREFIX = "ac_"
#: Longest opaque token value accepted anywhere (ours are about 46 characters).
MAX_OPAQUE_TOKEN_LENGTH = 512
#: Longest JWT access token accepted (RFC 9068; a JWT names every audience and scope).
MAX_JWT_LENGTH = 16_384


def is_access_token(value: str) -> bool:
    """Whether ``value`` has the shape of one of our access tokens: opaque (``tk_``) or a
    JWT (RFC 9068: a compact JWS, whose base64url header starts with ``eyJ``). Either is
    then looked up by its hash, like any token."""
    if value.startswith(ACCESS_TOKEN_PREFIX):
        return len(value) <= MAX_OPAQUE_TOKEN_LENGTH
    return value.startswith("eyJ") and len(value) <= MAX_JWT_LENGTH and value.count(".") == 2


def hash_token(value: str) -> str:
    """Lowercase hex SHA-256 of the value's UTF-8 bytes: the only form a store keeps."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def token_display(value: str) -> str:
    """A prefix safe for logs: the type prefix and four characters (``tk_1a2b...``)."""
    return value[:7] + "..."

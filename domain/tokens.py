"""How token values are stored and shown: SHA-256 hex digests, and a short display prefix."""

from __future__ import annotations

import hashlib

ACCESS_TOKEN_PREFIX = "tk_"
REFRESH_TOKEN_PREFIX = "rt_"
CODE_PREFIX = "ac_"


def hash_token(value: str) -> str:
    """Lowercase hex SHA-256 of the value's UTF-8 bytes: the only form a store keeps."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def token_display(value: str) -> str:
    """A prefix safe for logs: the type prefix and four characters (``tk_1a2b...``)."""
    return value[:7] + "..."

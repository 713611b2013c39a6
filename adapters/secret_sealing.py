"""Secrets at rest sealed with AES-256-GCM (``cryptography``), as ``ports.sealing.SecretSealer``.

A sealed value reads ``sealed.v1.<kid>.<data>``: ``kid`` names the key (16 hex digits of a
hash of it, so it reveals nothing usable), ``data`` is URL-safe base64 (no padding) of a
random 96-bit nonce followed by the ciphertext and its 128-bit tag. The version prefix, the
``kid`` and the caller's associated data are all authenticated, so a value moved to another
user, or relabelled with another key's id, does not open.

Several keys may be configured: the first seals, every one opens, so keys rotate without a
flag day; a value sealed with an older key opens as ``stale`` so the caller seals it again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ports.sealing import OpenedSecret, UnreadableSecret

KEY_BYTES = 32
_PREFIX = "sealed."
_VERSION = "sealed.v1."
_NONCE_BYTES = 12


def key_id(key: bytes) -> str:
    """The public name of a key, stable for the same key on every instance."""
    return hashlib.sha256(b"auth-service sealing key id\x00" + key).hexdigest()[:16]


def parse_key_text(text: str) -> bytes:
    """A key from a key file: base64 (standard or URL-safe alphabet, padding optional) of
    exactly 32 random bytes; surrounding whitespace is ignored. Raises ``ValueError``."""
    compact = "".join(text.split())
    padded = compact + "=" * (-len(compact) % 4)
    try:
        key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a sealing key file must hold base64 of 32 bytes") from exc
    if len(key) != KEY_BYTES:
        raise ValueError(f"a sealing key must be {KEY_BYTES} bytes (got {len(key)})")
    return key


def new_key_text() -> str:
    """A fresh random key, as a key file holds it (one line of base64)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii") + "\n"


class AesGcmSecretSealer:
    """Seals with the first key; opens with any of them."""

    __slots__ = ("_current", "_keys")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one sealing key is required")
        ciphers: dict[str, AESGCM] = {}
        for key in keys:
            if len(key) != KEY_BYTES:
                raise ValueError(f"a sealing key must be {KEY_BYTES} bytes")
            ciphers.setdefault(key_id(key), AESGCM(key))
        self._keys = ciphers
        self._current = key_id(keys[0])

    @classmethod
    def from_key_files(cls, paths: Sequence[str]) -> AesGcmSecretSealer:
        """Keys from files (see :func:`parse_key_text`), the current one first. Raises
        ``OSError`` for an unreadable file and ``ValueError`` for a malformed one."""
        keys = []
        for path in paths:
            with open(path, encoding="ascii") as handle:
                keys.append(parse_key_text(handle.read()))
        return cls(keys)

    @property
    def current_key_id(self) -> str:
        return self._current

    def seal(self, plaintext: str, associated_data: str) -> str:
        header = f"{_VERSION}{self._current}."
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self._current].encrypt(
            nonce, plaintext.encode("utf-8"), _aad(header, associated_data))
        return header + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")

    def open(self, sealed: str, associated_data: str) -> OpenedSecret:
        version, kid, data = _split(sealed)
        if version != _VERSION:
            raise UnreadableSecret("the sealed value has an unknown format")
        cipher = self._keys.get(kid)
        if cipher is None:
            raise UnreadableSecret(f"the value was sealed with key {kid}, which is not configured")
        try:
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            if len(raw) <= _NONCE_BYTES:
                raise ValueError("too short")
            plaintext = cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                       _aad(f"{version}{kid}.", associated_data))
            text = plaintext.decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise UnreadableSecret("the sealed value was altered or belongs elsewhere") from exc
        return OpenedSecret(plaintext=text, stale=kid != self._current)

    def is_sealed(self, value: str) -> bool:
        return value.startswith(_PREFIX)


def _aad(header: str, associated_data: str) -> bytes:
    # The separator keeps (header, data) pairs unambiguous: the header never holds a NUL.
    return header.encode("ascii") + b"\x00" + associated_data.encode("utf-8")


def _split(sealed: str) -> tuple[str, str, str]:
    """``("sealed.v1.", kid, data)``, or empty parts for anything else."""
    if not sealed.isascii():
        return "", "", ""
    parts = sealed.split(".")
    if len(parts) != 4:
        return "", "", ""
    return f"{parts[0]}.{parts[1]}.", parts[2], parts[3]

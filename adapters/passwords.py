"""argon2id password hashing (argon2-cffi), behind ``ports.security.PasswordHasher``.

Hashing and verifying are CPU-bound on purpose, so they run in a worker thread and never
block the event loop.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2PasswordHasher:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()  # argon2id with RFC 9106 low-memory profile
        # Verified against when the user is unknown, so that both cases take the same time.
        # Made on the first verification, not here: hashing at construction added ~0.7 s to
        # every application start (and to each test that builds an app).
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash, password)

    def _dummy_hash(self) -> str:
        # Made on the first verification whatever the user, so that the one slower check
        # does not tell an unknown user from a known one. Two threads racing here both hash
        # and one result wins: harmless, the hashes are equivalent.
        if self._dummy is None:
            self._dummy = self._hasher.hash("not-a-real-password")
        return self._dummy

    def _verify(self, password_hash: str | None, password: str) -> bool:
        dummy = self._dummy_hash()
        try:
            return self._hasher.verify(password_hash or dummy, password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False

"""The argon2id adapter: verification results and the unknown-user dummy hash."""

from __future__ import annotations

from argon2 import PasswordHasher

from adapters.passwords import Argon2PasswordHasher


class CountingHasher(PasswordHasher):
    """A cheap argon2 hasher that counts the hashes it makes."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.hashes = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.hashes += 1
        return super().hash(password, salt=salt)


def test_construction_hashes_nothing() -> None:
    hasher = CountingHasher()
    Argon2PasswordHasher(hasher)
    assert hasher.hashes == 0


async def test_first_verification_makes_the_dummy_whoever_the_user_is() -> None:
    hasher = CountingHasher()
    adapter = Argon2PasswordHasher(hasher)
    stored = await adapter.hash("correct horse")
    assert hasher.hashes == 1
    # A known user first: the dummy is made now too, so the first unknown user is not slower.
    assert await adapter.verify(stored, "correct horse") is True
    assert hasher.hashes == 2
    assert await adapter.verify(None, "correct horse") is False
    assert await adapter.verify(None, "not-a-real-password") is False
    assert await adapter.verify(stored, "wrong") is False
    assert hasher.hashes == 2


async def test_unknown_user_is_refused_even_with_the_dummy_password() -> None:
    adapter = Argon2PasswordHasher(CountingHasher())
    assert await adapter.verify(None, "not-a-real-password") is False
    assert await adapter.verify("", "not-a-real-password") is False
    assert await adapter.verify("not-an-argon2-hash", "x") is False

"""The credentials part of the Store contract: password hashes, TOTP secrets, the verified
email, passkeys and recovery codes (the ``CredentialStore`` port)."""

from __future__ import annotations

import asyncio
import hashlib

import msgspec
import pytest

from adapters.testing.contract.fixtures import StoreFixtures, _user
from domain.entities import Passkey
from domain.errors import Conflict, NotFound
from ports.store import Store


def _passkey(user_id: str, name: str, *, created_at: int = 1_700_000_000,
             **changes: object) -> Passkey:
    passkey = Passkey(
        credential_id=f"cred-{name}", user_id=user_id, public_key=f"pk-{name}",
        sign_count=0, transports=("internal", "hybrid"), name=f"Key {name}",
        synced=True, created_at=created_at)
    return msgspec.structs.replace(passkey, **changes)


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class CredentialContract(StoreFixtures):
    """A user's password hash and TOTP secret: set, cleared, confirmed, and ``NotFound``
    for an unknown user. The users they belong to are created with ``create_user``.

    Passkeys: added once per credential id across all users, found by credential id,
    listed oldest first, renamed and removed only by their user, and a use accepted only
    when the signature counter grows (atomically). Recovery codes (stored as hashes): a
    set replaced as a whole, each code spent once (atomically), counted.
    """

    async def test_credentials_of_an_unknown_user_raise_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.get_credentials("no-such-user")

    async def test_a_new_user_has_no_credentials(self, store: Store) -> None:
        created = await store.create_user(_user("alice"))
        credentials = await store.get_credentials(created.id)
        assert credentials.user_id == created.id
        assert (credentials.password_hash, credentials.totp_secret) == (None, None)
        assert credentials.totp_confirmed is False

    async def test_set_password_hash_then_clear_it(self, store: Store) -> None:
        created = await store.create_user(_user("alice"))
        await store.set_password_hash(created.id, "$argon2id$new")
        assert (await store.get_credentials(created.id)).password_hash == "$argon2id$new"
        await store.set_password_hash(created.id, None)
        assert (await store.get_credentials(created.id)).password_hash is None

    async def test_set_password_hash_of_an_unknown_user_raises_not_found(
        self, store: Store
    ) -> None:
        with pytest.raises(NotFound):
            await store.set_password_hash("no-such-user", "$argon2id$x")

    async def test_set_totp_then_confirm_it(self, store: Store) -> None:
        created = await store.create_user(_user("alice"), password_hash="$argon2id$pw")
        await store.set_totp(created.id, "JBSWY3DPEHPK3PXP", confirmed=False)
        pending = await store.get_credentials(created.id)
        assert (pending.totp_secret, pending.totp_confirmed) == ("JBSWY3DPEHPK3PXP", False)
        await store.set_totp(created.id, "JBSWY3DPEHPK3PXP", confirmed=True)
        confirmed = await store.get_credentials(created.id)
        assert confirmed.totp_confirmed is True
        assert confirmed.password_hash == "$argon2id$pw"

    async def test_set_totp_none_clears_it(self, store: Store) -> None:
        created = await store.create_user(_user("alice"))
        await store.set_totp(created.id, "JBSWY3DPEHPK3PXP", confirmed=True)
        await store.set_totp(created.id, None, confirmed=False)
        credentials = await store.get_credentials(created.id)
        assert (credentials.totp_secret, credentials.totp_confirmed) == (None, False)

    async def test_set_totp_of_an_unknown_user_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.set_totp("no-such-user", "JBSWY3DPEHPK3PXP", confirmed=False)

    # Verified email

    async def test_a_verified_email_is_kept_and_cleared(self, store: Store) -> None:
        created = await store.create_user(_user("alice"), password_hash="$argon2id$pw")
        await store.set_verified_email(created.id, "alice@example.com")
        credentials = await store.get_credentials(created.id)
        assert credentials.verified_email == "alice@example.com"
        assert credentials.password_hash == "$argon2id$pw"
        await store.set_totp(created.id, "JBSWY3DPEHPK3PXP", confirmed=True)
        await store.set_password_hash(created.id, "$argon2id$new")
        assert (await store.get_credentials(created.id)).verified_email == "alice@example.com"
        await store.set_verified_email(created.id, None)
        assert (await store.get_credentials(created.id)).verified_email is None

    async def test_set_verified_email_of_an_unknown_user_raises_not_found(
        self, store: Store
    ) -> None:
        with pytest.raises(NotFound):
            await store.set_verified_email("no-such-user", "a@example.com")


    # Passkeys

    async def test_a_passkey_is_kept_with_every_field(self, store: Store, now: int) -> None:
        alice = await store.create_user(_user("alice"))
        passkey = _passkey(alice.id, "a", sign_count=7, created_at=now)
        await store.add_passkey(passkey)
        assert await store.find_passkey("cred-a") == passkey
        assert await store.list_passkeys(alice.id) == [passkey]
        assert await store.find_passkey("cred-unknown") is None

    async def test_passkeys_are_listed_oldest_first_per_user(
        self, store: Store, now: int
    ) -> None:
        alice = await store.create_user(_user("alice"))
        bob = await store.create_user(_user("bob"))
        newer = _passkey(alice.id, "newer", created_at=now + 10)
        older = _passkey(alice.id, "older", created_at=now)
        await store.add_passkey(newer)
        await store.add_passkey(older)
        await store.add_passkey(_passkey(bob.id, "bobs", created_at=now))
        assert await store.list_passkeys(alice.id) == [older, newer]
        assert [p.credential_id for p in await store.list_passkeys(bob.id)] == ["cred-bobs"]
        assert await store.list_passkeys("no-such-user") == []

    async def test_a_credential_id_is_unique_across_users(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        bob = await store.create_user(_user("bob"))
        await store.add_passkey(_passkey(alice.id, "a"))
        with pytest.raises(Conflict):
            await store.add_passkey(_passkey(bob.id, "a"))
        with pytest.raises(Conflict):
            await store.add_passkey(_passkey(alice.id, "a"))
        held = await store.find_passkey("cred-a")
        assert held is not None and held.user_id == alice.id
        assert await store.list_passkeys(bob.id) == []

    async def test_adding_a_passkey_for_an_unknown_user_raises_not_found(
        self, store: Store
    ) -> None:
        with pytest.raises(NotFound):
            await store.add_passkey(_passkey("no-such-user", "a"))

    async def test_a_use_is_accepted_only_when_the_counter_grows(
        self, store: Store, now: int
    ) -> None:
        alice = await store.create_user(_user("alice"))
        await store.add_passkey(_passkey(alice.id, "a", sign_count=5))
        assert await store.record_passkey_use("cred-a", 6, now + 1)
        held = await store.find_passkey("cred-a")
        assert held is not None and (held.sign_count, held.last_used_at) == (6, now + 1)
        assert not await store.record_passkey_use("cred-a", 6, now + 2)  # stood still
        assert not await store.record_passkey_use("cred-a", 3, now + 3)  # went back
        assert not await store.record_passkey_use("cred-a", 0, now + 4)
        held = await store.find_passkey("cred-a")
        assert held is not None and (held.sign_count, held.last_used_at) == (6, now + 1)
        assert not await store.record_passkey_use("cred-unknown", 1, now)

    async def test_an_authenticator_without_a_counter_is_accepted_every_time(
        self, store: Store, now: int
    ) -> None:
        alice = await store.create_user(_user("alice"))
        await store.add_passkey(_passkey(alice.id, "a", sign_count=0))
        assert await store.record_passkey_use("cred-a", 0, now)
        assert await store.record_passkey_use("cred-a", 0, now + 5)
        held = await store.find_passkey("cred-a")
        assert held is not None and (held.sign_count, held.last_used_at) == (0, now + 5)

    async def test_concurrent_uses_with_one_counter_value_have_one_winner(
        self, store: Store, now: int
    ) -> None:
        self._require_concurrency()
        alice = await store.create_user(_user("alice"))
        await store.add_passkey(_passkey(alice.id, "a", sign_count=1))
        results = await asyncio.gather(
            *(store.record_passkey_use("cred-a", 2, now) for _ in range(10)))
        assert results.count(True) == 1

    async def test_rename_and_remove_only_the_users_own_passkey(
        self, store: Store
    ) -> None:
        alice = await store.create_user(_user("alice"))
        bob = await store.create_user(_user("bob"))
        await store.add_passkey(_passkey(alice.id, "a"))
        await store.add_passkey(_passkey(alice.id, "b", created_at=1_700_000_001))
        assert not await store.rename_passkey(bob.id, "cred-a", "Stolen")
        assert not await store.remove_passkey(bob.id, "cred-a")
        assert await store.rename_passkey(alice.id, "cred-a", "Laptop")
        held = await store.find_passkey("cred-a")
        assert held is not None and held.name == "Laptop"
        assert await store.remove_passkey(alice.id, "cred-a")
        assert not await store.remove_passkey(alice.id, "cred-a")
        assert await store.find_passkey("cred-a") is None
        assert [p.credential_id for p in await store.list_passkeys(alice.id)] == ["cred-b"]
        assert not await store.rename_passkey(alice.id, "cred-a", "Gone")

    async def test_remove_passkeys_forgets_all_of_one_user(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        bob = await store.create_user(_user("bob"))
        await store.add_passkey(_passkey(alice.id, "a"))
        await store.add_passkey(_passkey(alice.id, "b"))
        await store.add_passkey(_passkey(bob.id, "c"))
        assert await store.remove_passkeys(alice.id) == 2
        assert await store.remove_passkeys(alice.id) == 0
        assert await store.list_passkeys(alice.id) == []
        assert await store.find_passkey("cred-a") is None
        assert await store.find_passkey("cred-c") is not None

    async def test_deleting_a_user_forgets_their_passkeys(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        await store.add_passkey(_passkey(alice.id, "a"))
        await store.delete_user(alice.id)
        assert await store.find_passkey("cred-a") is None
        bob = await store.create_user(_user("bob"))
        await store.add_passkey(_passkey(bob.id, "a"))  # the id is free again


    # Recovery codes

    async def test_each_code_is_spent_once(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        codes = [_code_hash(f"code-{n}") for n in range(10)]
        await store.replace_recovery_codes(alice.id, codes)
        assert await store.count_recovery_codes(alice.id) == 10
        assert await store.use_recovery_code(alice.id, codes[3])
        assert not await store.use_recovery_code(alice.id, codes[3])
        assert await store.count_recovery_codes(alice.id) == 9
        assert not await store.use_recovery_code(alice.id, _code_hash("never-issued"))

    async def test_a_code_is_spent_only_by_its_user(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        bob = await store.create_user(_user("bob"))
        await store.replace_recovery_codes(alice.id, [_code_hash("alices")])
        assert not await store.use_recovery_code(bob.id, _code_hash("alices"))
        assert await store.count_recovery_codes(alice.id) == 1

    async def test_replacing_the_set_invalidates_the_old_codes(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        old = [_code_hash(f"old-{n}") for n in range(10)]
        new = [_code_hash(f"new-{n}") for n in range(10)]
        await store.replace_recovery_codes(alice.id, old)
        await store.replace_recovery_codes(alice.id, new)
        assert not await store.use_recovery_code(alice.id, old[0])
        assert await store.use_recovery_code(alice.id, new[0])
        assert await store.count_recovery_codes(alice.id) == 9
        await store.replace_recovery_codes(alice.id, [])
        assert await store.count_recovery_codes(alice.id) == 0
        assert not await store.use_recovery_code(alice.id, new[1])

    async def test_concurrent_uses_of_one_code_have_one_winner(self, store: Store) -> None:
        self._require_concurrency()
        alice = await store.create_user(_user("alice"))
        await store.replace_recovery_codes(alice.id, [_code_hash("one")])
        results = await asyncio.gather(
            *(store.use_recovery_code(alice.id, _code_hash("one")) for _ in range(10)))
        assert results.count(True) == 1
        assert await store.count_recovery_codes(alice.id) == 0

    async def test_an_unknown_user(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.replace_recovery_codes("no-such-user", [_code_hash("x")])
        assert await store.count_recovery_codes("no-such-user") == 0
        assert not await store.use_recovery_code("no-such-user", _code_hash("x"))

    async def test_deleting_a_user_forgets_their_codes(self, store: Store) -> None:
        alice = await store.create_user(_user("alice"))
        await store.replace_recovery_codes(alice.id, [_code_hash("x")])
        await store.delete_user(alice.id)
        assert await store.count_recovery_codes(alice.id) == 0

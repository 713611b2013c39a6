"""The credentials part of the Store contract: password hashes and TOTP secrets (the
``CredentialStore`` port)."""

from __future__ import annotations

import pytest

from adapters.testing.contract.fixtures import StoreFixtures, _user
from domain.errors import NotFound
from ports.store import Store


class CredentialContract(StoreFixtures):
    """A user's password hash and TOTP secret: set, cleared, confirmed, and ``NotFound``
    for an unknown user. The users they belong to are created with ``create_user``.
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

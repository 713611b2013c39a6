"""``SqlCredentials``: the ``CredentialStore`` port over PostgreSQL (``user_credentials``,
and since migration ``0020`` ``passkeys`` and ``recovery_codes``).

Both new tables reference ``users`` with ``ON DELETE CASCADE``, as ``user_credentials``
does, so deleting a user forgets their factors in the same statement. The two single-use
steps are one statement each, decided by PostgreSQL's row locks:

- a passkey use is ``UPDATE passkeys ... WHERE credential_id = $1 AND (sign_count < $n OR
  (sign_count = 0 AND $n = 0)) RETURNING``: a concurrent caller with the same counter waits
  for the row lock, then re-reads the row and finds the condition false;
- a recovery code use is ``DELETE FROM recovery_codes ... RETURNING``: of concurrent
  callers, the first deletes the row and the others find none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import tables as t
from adapters.sql.connection import SqlConnection
from domain.entities import Credentials, Passkey
from domain.errors import NotFound
from domain.text import is_storable

_p = t.passkeys
_r = t.recovery_codes
#: A user's passkeys, oldest first (index ``passkeys_user_id_idx``).
PASSKEY_ORDER = (_p.c.created_at, _p.c.credential_id)


def passkey_values(passkey: Passkey) -> dict[str, Any]:
    """The ``passkeys`` row of ``passkey``."""
    return {
        "credential_id": passkey.credential_id,
        "user_id": passkey.user_id,
        "public_key": passkey.public_key,
        "sign_count": passkey.sign_count,
        "transports": list(passkey.transports),
        "name": passkey.name,
        "synced": passkey.synced,
        "created_at": passkey.created_at,
        "last_used_at": passkey.last_used_at,
    }


def passkey_from_row(row: sa.Row[Any]) -> Passkey:
    m = row._mapping
    return Passkey(
        credential_id=m["credential_id"], user_id=m["user_id"], public_key=m["public_key"],
        sign_count=m["sign_count"], transports=tuple(m["transports"]), name=m["name"],
        synced=m["synced"], created_at=m["created_at"], last_used_at=m["last_used_at"],
    )


async def lock_user(conn: AsyncConnection, user_id: str) -> None:
    """Lock the user's row until the transaction ends, or raise ``NotFound``. Writers of a
    user's whole set of factors queue here, so that two replacements never mix."""
    found = (await conn.execute(
        sa.select(t.users.c.id).where(t.users.c.id == user_id).with_for_update(key_share=True)
    )).first()
    if found is None:
        raise NotFound(f"no user {user_id}")


async def write_recovery_codes(
    conn: AsyncConnection, user_id: str, code_hashes: Sequence[str]
) -> None:
    """Make ``code_hashes`` the user's whole set (the caller holds :func:`lock_user`)."""
    await conn.execute(sa.delete(_r).where(_r.c.user_id == user_id))
    unique = list(dict.fromkeys(code_hashes))
    if unique:
        await conn.execute(
            pg_insert(_r).values([{"user_id": user_id, "code_hash": h} for h in unique])
            .on_conflict_do_nothing()
        )


class SqlCredentials(SqlConnection):
    """:class:`ports.store.CredentialStore` for :class:`~adapters.sql.SqlStore`."""

    async def get_credentials(self, user_id: str) -> Credentials:
        """See :meth:`ports.store.CredentialStore.get_credentials`."""
        c = t.user_credentials
        row = await self._first(
            sa.select(t.users.c.id, c.c.password_hash, c.c.totp_secret, c.c.totp_confirmed,
                      c.c.verified_email)
            .select_from(t.users.outerjoin(c, c.c.user_id == t.users.c.id))
            .where(t.users.c.id == user_id)
        )
        if row is None:
            raise NotFound(f"no user {user_id}")
        return Credentials(
            user_id=user_id,
            password_hash=row.password_hash,
            totp_secret=row.totp_secret,
            totp_confirmed=bool(row.totp_confirmed) and row.totp_secret is not None,
            verified_email=row.verified_email,
        )

    async def _set_credentials(self, user_id: str, values: dict[str, Any]) -> None:
        stmt = pg_insert(t.user_credentials).values(
            user_id=user_id, **({"totp_confirmed": False} | values)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"], set_={k: stmt.excluded[k] for k in values}
        )

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(stmt)

        await self._transaction(work)

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> None:
        """See :meth:`ports.store.CredentialStore.set_password_hash`."""
        await self._set_credentials(user_id, {"password_hash": password_hash})

    async def set_totp(self, user_id: str, secret: str | None, *, confirmed: bool) -> None:
        """See :meth:`ports.store.CredentialStore.set_totp`.

        Clearing the seed also clears ``totp_confirmed``: a factor without a seed cannot count.
        """
        await self._set_credentials(
            user_id, {"totp_secret": secret, "totp_confirmed": confirmed and secret is not None}
        )

    async def set_verified_email(self, user_id: str, address: str | None) -> None:
        """See :meth:`ports.store.CredentialStore.set_verified_email`."""
        await self._set_credentials(user_id, {"verified_email": address})

    # Passkeys

    async def add_passkey(self, passkey: Passkey) -> None:
        """See :meth:`ports.store.CredentialStore.add_passkey`. One INSERT: the primary key
        decides a race for a credential id (``Conflict``), the foreign key an unknown user
        (``NotFound``)."""
        stmt = sa.insert(_p).values(**passkey_values(passkey))

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(stmt)

        await self._autocommit(work)

    async def list_passkeys(self, user_id: str) -> list[Passkey]:
        """See :meth:`ports.store.CredentialStore.list_passkeys`."""
        if not is_storable(user_id):
            return []  # no row can hold it; asking would be a data error
        stmt = sa.select(_p).where(_p.c.user_id == user_id).order_by(*PASSKEY_ORDER)

        async def work(conn: AsyncConnection) -> list[Passkey]:
            return [passkey_from_row(row) for row in await conn.execute(stmt)]

        return await self._autocommit(work)

    async def find_passkey(self, credential_id: str) -> Passkey | None:
        """See :meth:`ports.store.CredentialStore.find_passkey`."""
        if not is_storable(credential_id):
            return None
        row = await self._first(sa.select(_p).where(_p.c.credential_id == credential_id))
        return None if row is None else passkey_from_row(row)

    async def record_passkey_use(self, credential_id: str, sign_count: int, now: int) -> bool:
        """See :meth:`ports.store.CredentialStore.record_passkey_use`. One conditional
        UPDATE (see the module docstring)."""
        if not is_storable(credential_id):
            return False
        presented = sa.literal(sign_count, sa.BigInteger)
        stmt = (
            sa.update(_p)
            .where(
                _p.c.credential_id == credential_id,
                sa.or_(_p.c.sign_count < presented,
                       sa.and_(_p.c.sign_count == 0, presented == 0)),
            )
            .values(sign_count=presented, last_used_at=now)
            .returning(_p.c.credential_id)
        )
        # Repeated after a lost connection, a use that did commit finds the counter already
        # there and reads as refused: the sign-in fails closed.
        return await self._first(stmt) is not None

    async def rename_passkey(self, user_id: str, credential_id: str, name: str) -> bool:
        """See :meth:`ports.store.CredentialStore.rename_passkey`."""
        if not (is_storable(user_id) and is_storable(credential_id)):
            return False
        stmt = (
            sa.update(_p)
            .where(_p.c.credential_id == credential_id, _p.c.user_id == user_id)
            .values(name=name)
            .returning(_p.c.credential_id)
        )
        return await self._first(stmt) is not None

    async def remove_passkey(self, user_id: str, credential_id: str) -> bool:
        """See :meth:`ports.store.CredentialStore.remove_passkey`."""
        if not (is_storable(user_id) and is_storable(credential_id)):
            return False
        stmt = (
            sa.delete(_p)
            .where(_p.c.credential_id == credential_id, _p.c.user_id == user_id)
            .returning(_p.c.credential_id)
        )
        return await self._first(stmt) is not None

    async def remove_passkeys(self, user_id: str) -> int:
        """See :meth:`ports.store.CredentialStore.remove_passkeys`."""
        if not is_storable(user_id):
            return 0
        stmt = sa.delete(_p).where(_p.c.user_id == user_id)

        async def work(conn: AsyncConnection) -> int:
            return int((await conn.execute(stmt)).rowcount)

        return await self._autocommit(work)

    # Recovery codes

    async def replace_recovery_codes(self, user_id: str, code_hashes: Sequence[str]) -> None:
        """See :meth:`ports.store.CredentialStore.replace_recovery_codes`. One transaction
        that first locks the user's row: a concurrent replacement waits, then replaces
        this one's set whole (the sets never mix)."""

        async def work(conn: AsyncConnection) -> None:
            await lock_user(conn, user_id)
            await write_recovery_codes(conn, user_id, code_hashes)

        await self._transaction(work)

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        """See :meth:`ports.store.CredentialStore.use_recovery_code`. One DELETE ...
        RETURNING (see the module docstring)."""
        if not (is_storable(user_id) and is_storable(code_hash)):
            return False
        stmt = (
            sa.delete(_r)
            .where(_r.c.user_id == user_id, _r.c.code_hash == code_hash)
            .returning(_r.c.code_hash)
        )
        # Repeated after a lost connection, a use that did commit finds no row: refused,
        # which fails closed (the code is spent either way).
        return await self._first(stmt) is not None

    async def count_recovery_codes(self, user_id: str) -> int:
        """See :meth:`ports.store.CredentialStore.count_recovery_codes`."""
        if not is_storable(user_id):
            return 0
        row = await self._first(
            sa.select(sa.func.count()).select_from(_r).where(_r.c.user_id == user_id)
        )
        return 0 if row is None else int(row[0])

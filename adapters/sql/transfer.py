"""The transfer Protocols of :mod:`ports.store` over PostgreSQL: ``SqlTransfer``.

A mixin of :class:`~adapters.sql.store.SqlStore`, using the connection plumbing and error
translation of :class:`~adapters.sql.connection.SqlConnection`. Exports page by primary key
(keyset: ``WHERE key > cursor ORDER BY key LIMIT n``, one range scan of the primary-key
index, in the column's own collation, which is a total order). Each import is one
transaction: ``INSERT ... ON CONFLICT DO UPDATE ... WHERE (stored row) IS DISTINCT FROM (new
row) RETURNING key``, so a row that is already as given is not rewritten and the returned
keys count exactly what changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sql import tables as t
from adapters.sql.codes import _code_from_row, code_values
from adapters.sql.connection import SqlConnection
from adapters.sql.consents import consent_from_row, consent_values, union_of_scopes
from adapters.sql.consents import grants_of as consent_grants_of
from adapters.sql.credentials import (
    PASSKEY_ORDER,
    passkey_from_row,
    passkey_values,
    write_recovery_codes,
)
from adapters.sql.identities import (
    _group_from_row,
    _unique_members,
    _user_from_row,
    _user_values,
)
from adapters.sql.sessions import grants_of as session_grants_of
from adapters.sql.sessions import live as live_session
from adapters.sql.sessions import session_from_row, session_values
from adapters.sql.tokens import _access_from_row, _refresh_from_row
from domain.consent import Consent, ConsentRecord, merge_consents
from domain.entities import (
    AccessToken,
    AuthorizationCode,
    Group,
    Member,
    Passkey,
    RefreshToken,
)
from domain.errors import Conflict
from domain.records import Batch, Claim, ConsumedCodeRecord, ReuseMarker, UserRecord
from domain.sessions import Session, SessionGrant, SessionRecord, merge_sessions

_R = TypeVar("_R")

# PostgreSQL's wire protocol allows 32767 bind parameters per statement; a batch of wide
# rows is split into several statements of one transaction below that.
_MAX_PARAMETERS = 30_000


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    size = max(_MAX_PARAMETERS // max(len(rows[0]), 1), 1) if rows else 1
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _last_wins(records: Sequence[_R], key: Callable[[_R], str]) -> list[_R]:
    """One record per key (one statement may not touch a row twice)."""
    return list({key(record): record for record in records}.values())


def _changed_upsert(
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    key: str,
    overrides: Callable[[Any], dict[str, Any]] | None = None,
) -> sa.Insert:
    """Insert ``rows``; on a key clash update the row only where it differs. ``RETURNING``
    the key yields exactly the rows inserted or changed. ``overrides(excluded)`` replaces
    the new value of some columns (merges such as ``active AND excluded.active``)."""
    insert = pg_insert(table).values(list(rows))
    new = {name: insert.excluded[name] for name in rows[0] if name != key}
    if overrides is not None:
        new |= overrides(insert.excluded)
    names = list(new)
    stored = sa.tuple_(*(table.c[name] for name in names))
    return insert.on_conflict_do_update(
        index_elements=[key],
        set_=new,
        where=stored.is_distinct_from(sa.tuple_(*(new[name] for name in names))),
    ).returning(table.c[key])


async def _keys(conn: AsyncConnection, stmt: sa.Executable) -> set[str]:
    return {str(value) for value in (await conn.execute(stmt)).scalars()}


async def _upsert_changed(
    conn: AsyncConnection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    key: str,
    overrides: Callable[[Any], dict[str, Any]] | None = None,
) -> set[str]:
    changed: set[str] = set()
    for chunk in _chunks(rows):
        changed |= await _keys(conn, _changed_upsert(table, chunk, key, overrides))
    return changed


async def _live_keys(
    conn: AsyncConnection, table: sa.Table, key: str, keys: Sequence[str], now: int
) -> set[str]:
    if not keys:
        return set()
    column = table.c[key]
    return await _keys(conn, sa.select(column).where(column.in_(keys), table.c.exp > now))


async def _delete_counting_live(
    conn: AsyncConnection, table: sa.Table, key: str, keys: Sequence[str], now: int
) -> set[str]:
    """Delete the rows of these keys; the keys of those that were live."""
    if not keys:
        return set()
    column = table.c[key]
    rows = await conn.execute(
        sa.delete(table).where(column.in_(keys)).returning(column, table.c.exp)
    )
    return {str(row_key) for row_key, exp in rows if exp is not None and exp > now}


def _credential_values(record: UserRecord) -> dict[str, Any] | None:
    if record.password_hash is None and record.totp_secret is None \
            and record.verified_email is None:
        return None
    return {
        "user_id": record.user.id,
        "password_hash": record.password_hash,
        "totp_secret": record.totp_secret,
        "totp_confirmed": record.totp_confirmed and record.totp_secret is not None,
        "verified_email": record.verified_email,
    }


def _passkeys_of(records: Sequence[UserRecord]) -> dict[str, dict[str, Passkey]]:
    """Each record's passkeys by credential id. Raises ``Conflict`` for a passkey of
    another user than its record's, or one credential id in the records of two users."""
    holders: dict[str, str] = {}
    found: dict[str, dict[str, Passkey]] = {}
    for record in records:
        user_id = record.user.id
        mine = found.setdefault(user_id, {})
        for passkey in record.passkeys:
            held_by = holders.setdefault(passkey.credential_id, user_id)
            if passkey.user_id != user_id or held_by != user_id:
                raise _taken(passkey.credential_id)
            mine[passkey.credential_id] = passkey
    return found


def _taken(credential_id: str) -> Conflict:
    return Conflict(f"passkey {credential_id!r} belongs to another user", "credential_id")


async def _stored_factors(
    conn: AsyncConnection, user_ids: Sequence[str]
) -> tuple[dict[str, list[Passkey]], dict[str, list[str]]]:
    """The passkeys (oldest first) and recovery code hashes (in code-point order) of
    these users, as stored."""
    if not user_ids:
        return {}, {}
    p, r = t.passkeys, t.recovery_codes
    passkeys: dict[str, list[Passkey]] = {}
    for row in await conn.execute(
        sa.select(p).where(p.c.user_id.in_(user_ids)).order_by(p.c.user_id, *PASSKEY_ORDER)
    ):
        passkeys.setdefault(row.user_id, []).append(passkey_from_row(row))
    codes: dict[str, list[str]] = {}
    for user_id, code_hash in await conn.execute(
        sa.select(r.c.user_id, r.c.code_hash).where(r.c.user_id.in_(user_ids))
        .order_by(r.c.user_id, r.c.code_hash)
    ):
        codes.setdefault(user_id, []).append(code_hash)
    return passkeys, codes


async def _replace_factors(
    conn: AsyncConnection,
    wanted_passkeys: dict[str, dict[str, Passkey]],
    wanted_codes: dict[str, frozenset[str]],
) -> set[str]:
    """Make each user's passkeys and recovery codes those wanted; the users changed.
    Raises ``Conflict`` when another user holds one of the credential ids."""
    p = t.passkeys
    ids = list(wanted_passkeys)
    credential_ids = [c for mine in wanted_passkeys.values() for c in mine]
    if credential_ids:
        for credential_id, holder in await conn.execute(
            sa.select(p.c.credential_id, p.c.user_id).where(p.c.credential_id.in_(credential_ids))
        ):
            if credential_id not in wanted_passkeys.get(holder, {}):
                raise _taken(credential_id)
    passkeys, codes = await _stored_factors(conn, ids)
    new_passkeys = [
        user_id for user_id in ids
        if frozenset(passkeys.get(user_id, ())) != frozenset(wanted_passkeys[user_id].values())
    ]
    new_codes = [user_id for user_id in ids
                 if frozenset(codes.get(user_id, ())) != wanted_codes[user_id]]
    if new_passkeys:
        await conn.execute(sa.delete(p).where(p.c.user_id.in_(new_passkeys)))
        rows = [passkey_values(passkey) for user_id in new_passkeys
                for passkey in wanted_passkeys[user_id].values()]
        for chunk in _chunks(rows):
            await conn.execute(sa.insert(p).values(list(chunk)))
    for user_id in new_codes:
        await write_recovery_codes(conn, user_id, sorted(wanted_codes[user_id]))
    return set(new_passkeys) | set(new_codes)


def _access_values(token: AccessToken) -> dict[str, Any]:
    return {
        "token_hash": token.token_hash,
        "token_display": token.token_display,
        "active": token.active,
        "scope": token.scope,
        "client_id": token.client_id,
        "exp": token.exp,
        "iat": token.iat,
        "sub": token.sub,
        "token_binding": token.token_binding,
        "mfa_verified": token.mfa_verified,
        "grant_id": token.grant_id,
        "auth_time": token.auth_time,
        "audience": " ".join(token.audience),
        "act": " ".join(token.act),
    }


def _refresh_values(token: RefreshToken) -> dict[str, Any]:
    return {
        "refresh_token_hash": token.token_hash,
        "access_token_hash": token.access_token_hash,
        "exp": token.exp,
        "grant_id": token.grant_id,
        "client_id": token.client_id,
        "scope": token.scope,
        "sub": token.sub,
        "mfa_verified": token.mfa_verified,
        "iat": token.iat,
        "auth_time": token.auth_time,
        "token_binding": token.binding,
        "resources": " ".join(token.resources),
    }


def _later_exp(table: sa.Table, now: int) -> Callable[[Any], dict[str, Any]]:
    """Keep a live stored expiry when it is the later one: a copy never shortens it."""

    def overrides(excluded: Any) -> dict[str, Any]:
        return {"exp": sa.case(
            (table.c.exp > now, sa.func.greatest(table.c.exp, excluded.exp)),
            else_=excluded.exp,
        )}

    return overrides


class SqlTransfer(SqlConnection):
    """Every transfer Protocol of the port, for :class:`~adapters.sql.store.SqlStore`."""

    async def _export(
        self,
        stmt: sa.Select[Any],
        key: sa.ColumnElement[Any],
        cursor: str | None,
        limit: int,
        record_of: Callable[[sa.Row[Any]], _R],
    ) -> Batch[_R]:
        size = max(limit, 1)
        if cursor is not None:
            stmt = stmt.where(key > cursor)
        page = stmt.order_by(key).limit(size)

        async def work(conn: AsyncConnection) -> Sequence[sa.Row[Any]]:
            rows: Sequence[sa.Row[Any]] = (await conn.execute(page)).all()
            return rows

        rows = await self._autocommit(work)
        return Batch(
            records=tuple(record_of(row) for row in rows),
            cursor=str(rows[-1]._mapping[key]) if len(rows) == size else None,
        )

    # Users

    async def export_users(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[UserRecord]:
        """See :meth:`ports.store.UserTransfer.export_users`: a page of users with their
        credentials, then the passkeys and recovery codes of the page."""
        u, c = t.users, t.user_credentials
        size = max(limit, 1)
        stmt = sa.select(
            u, c.c.password_hash, c.c.totp_secret, c.c.totp_confirmed, c.c.verified_email,
        ).select_from(u.outerjoin(c, c.c.user_id == u.c.id))
        if cursor is not None:
            stmt = stmt.where(u.c.id > cursor)
        page = stmt.order_by(u.c.id).limit(size)

        async def work(conn: AsyncConnection) -> tuple[UserRecord, ...]:
            rows = (await conn.execute(page)).all()
            passkeys, codes = await _stored_factors(conn, [row.id for row in rows])
            return tuple(
                UserRecord(
                    user=_user_from_row(row),
                    password_hash=row.password_hash,
                    totp_secret=row.totp_secret,
                    totp_confirmed=bool(row.totp_confirmed) and row.totp_secret is not None,
                    verified_email=row.verified_email,
                    passkeys=tuple(passkeys.get(row.id, ())),
                    recovery_codes=tuple(codes.get(row.id, ())),
                )
                for row in rows
            )

        records = await self._autocommit(work)
        return Batch(records, records[-1].user.id if len(records) == size else None)

    async def import_users(self, records: tuple[UserRecord, ...], now: int) -> int:
        """See :meth:`ports.store.UserTransfer.import_users`. Users, then credentials,
        then passkeys and recovery codes (a user's set replaced where it differs), in one
        transaction; a name clash or a credential id another user holds raises
        ``Conflict`` and rolls the batch back."""
        unique = _last_wins(records, lambda record: record.user.id)
        if not unique:
            return 0
        wanted_passkeys = _passkeys_of(unique)
        wanted_codes = {r.user.id: frozenset(r.recovery_codes) for r in unique}
        users = [
            _user_values(r.user)
            | {"id": r.user.id, "created": r.user.created, "version": r.user.version}
            for r in unique
        ]
        with_credentials = [v for r in unique if (v := _credential_values(r)) is not None]
        without = [r.user.id for r in unique if _credential_values(r) is None]
        creds = t.user_credentials

        async def work(conn: AsyncConnection) -> int:
            changed = await _upsert_changed(conn, t.users, users, "id")
            if with_credentials:
                changed |= await _upsert_changed(conn, creds, with_credentials, "user_id")
            if without:
                changed |= await _keys(conn, sa.delete(creds).where(
                    creds.c.user_id.in_(without),
                    sa.or_(creds.c.password_hash.is_not(None), creds.c.totp_secret.is_not(None),
                           creds.c.verified_email.is_not(None)),
                ).returning(creds.c.user_id))
            changed |= await _replace_factors(conn, wanted_passkeys, wanted_codes)
            return len(changed)

        return await self._transaction(work)

    # Groups

    async def export_groups(self, cursor: str | None, limit: int, now: int) -> Batch[Group]:
        """See :meth:`ports.store.GroupTransfer.export_groups`."""
        g = t.groups
        size = max(limit, 1)
        stmt = sa.select(g)
        if cursor is not None:
            stmt = stmt.where(g.c.id > cursor)
        page = stmt.order_by(g.c.id).limit(size)

        async def work(conn: AsyncConnection) -> tuple[Group, ...]:
            rows = (await conn.execute(page)).all()
            members = await _stored_members(conn, [row.id for row in rows])
            return tuple(
                _group_from_row(row, members.get(row.id, ())) for row in rows
            )

        groups = await self._autocommit(work)
        return Batch(records=groups, cursor=groups[-1].id if len(groups) == size else None)

    async def import_groups(self, records: tuple[Group, ...], now: int) -> int:
        """See :meth:`ports.store.GroupTransfer.import_groups`. The stored groups of the
        batch are read first, so that only those that differ (row or member list) are
        written; all in one transaction."""
        wanted = [
            Group(
                id=g.id, display_name=g.display_name, external_id=g.external_id,
                members=tuple(
                    Member(value=m.value, type=m.type)
                    for m in _unique_members(g.members)
                ),
                created=g.created, last_modified=g.last_modified, version=g.version,
            )
            for g in _last_wins(records, lambda group: group.id)
        ]
        if not wanted:
            return 0
        g, gm = t.groups, t.group_members

        async def work(conn: AsyncConnection) -> int:
            ids = [group.id for group in wanted]
            rows = (await conn.execute(sa.select(g).where(g.c.id.in_(ids)))).all()
            members = await _stored_members(conn, ids)
            stored = {
                row.id: _group_from_row(row, members.get(row.id, ())) for row in rows
            }
            changed = [group for group in wanted if stored.get(group.id) != group]
            if not changed:
                return 0
            insert = pg_insert(g).values([
                {
                    "id": group.id, "display_name": group.display_name,
                    "external_id": group.external_id, "created": group.created,
                    "last_modified": group.last_modified, "version": group.version,
                }
                for group in changed
            ])
            await conn.execute(insert.on_conflict_do_update(
                index_elements=["id"],
                set_={name: insert.excluded[name] for name in
                      ("display_name", "external_id", "created", "last_modified", "version")},
            ))
            await conn.execute(sa.delete(gm).where(gm.c.group_id.in_([x.id for x in changed])))
            member_rows = [
                {"group_id": group.id, "user_id": m.value, "position": i, "member_type": m.type}
                for group in changed
                for i, m in enumerate(group.members)
            ]
            for chunk in _chunks(member_rows):
                await conn.execute(sa.insert(gm).values(list(chunk)))
            return len(changed)

        return await self._transaction(work)

    # Codes

    async def export_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AuthorizationCode]:
        """See :meth:`ports.store.CodeTransfer.export_codes`."""
        c = t.auth_codes
        return await self._export(
            sa.select(c).where(c.c.exp > now), c.c.code, cursor, limit, _code_from_row
        )

    async def import_codes(self, records: tuple[AuthorizationCode, ...], now: int) -> int:
        """See :meth:`ports.store.CodeTransfer.import_codes`."""
        live = [c for c in _last_wins(records, lambda code: code.code_hash) if c.exp > now]
        if not live:
            return 0

        async def work(conn: AsyncConnection) -> int:
            consumed = await _live_keys(
                conn, t.consumed_codes, "code", [c.code_hash for c in live], now
            )
            rows = [code_values(c) for c in live if c.code_hash not in consumed]
            if not rows:
                return 0
            return len(await _upsert_changed(conn, t.auth_codes, rows, "code"))

        return await self._transaction(work)

    async def export_consumed_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsumedCodeRecord]:
        """See :meth:`ports.store.CodeTransfer.export_consumed_codes`."""
        cc = t.consumed_codes

        def record_of(row: sa.Row[Any]) -> ConsumedCodeRecord:
            return ConsumedCodeRecord(
                code_hash=row.code, grant_id=row.grant_id, client_id=row.client_id, exp=row.exp
            )

        return await self._export(
            sa.select(cc).where(cc.c.exp > now), cc.c.code, cursor, limit, record_of
        )

    async def import_consumed_codes(
        self, records: tuple[ConsumedCodeRecord, ...], now: int
    ) -> int:
        """See :meth:`ports.store.CodeTransfer.import_consumed_codes`."""
        live = [r for r in _last_wins(records, lambda r: r.code_hash) if r.exp > now]
        if not live:
            return 0
        rows = [
            {"code": r.code_hash, "grant_id": r.grant_id, "client_id": r.client_id, "exp": r.exp}
            for r in live
        ]
        cc = t.consumed_codes

        async def work(conn: AsyncConnection) -> int:
            changed = await _upsert_changed(conn, cc, rows, "code", _later_exp(cc, now))
            changed |= await _delete_counting_live(
                conn, t.auth_codes, "code", [r.code_hash for r in live], now
            )
            return len(changed)

        return await self._transaction(work)

    # Tokens

    async def export_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccessToken]:
        """See :meth:`ports.store.TokenTransfer.export_access_tokens`."""
        tk = t.tokens
        return await self._export(
            sa.select(tk).where(tk.c.exp > now), tk.c.token_hash, cursor, limit,
            lambda row: _access_from_row(row._mapping),
        )

    async def import_access_tokens(self, records: tuple[AccessToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_access_tokens`. A live stored token
        that is revoked stays revoked (``active AND excluded.active``)."""
        rows = [
            _access_values(token)
            for token in _last_wins(records, lambda token: token.token_hash)
            if token.exp > now
        ]
        if not rows:
            return 0
        tk = t.tokens

        def still_revoked(excluded: Any) -> dict[str, Any]:
            return {"active": sa.case(
                (tk.c.exp > now, sa.and_(tk.c.active, excluded.active)), else_=excluded.active
            )}

        async def work(conn: AsyncConnection) -> int:
            return len(await _upsert_changed(conn, tk, rows, "token_hash", still_revoked))

        return await self._transaction(work)

    async def export_refresh_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[RefreshToken]:
        """See :meth:`ports.store.TokenTransfer.export_refresh_tokens`."""
        r = t.refresh_tokens
        return await self._export(
            sa.select(r).where(r.c.exp > now), r.c.refresh_token_hash, cursor, limit,
            _refresh_from_row,
        )

    async def import_refresh_tokens(self, records: tuple[RefreshToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_refresh_tokens`."""
        live = [r for r in _last_wins(records, lambda r: r.token_hash) if r.exp > now]
        if not live:
            return 0

        async def work(conn: AsyncConnection) -> int:
            rotated = await _live_keys(
                conn, t.refresh_token_reuse, "refresh_token_hash",
                [r.token_hash for r in live], now,
            )
            rows = [_refresh_values(r) for r in live if r.token_hash not in rotated]
            if not rows:
                return 0
            return len(
                await _upsert_changed(conn, t.refresh_tokens, rows, "refresh_token_hash")
            )

        return await self._transaction(work)

    async def export_reuse_markers(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ReuseMarker]:
        """See :meth:`ports.store.TokenTransfer.export_reuse_markers`."""
        m = t.refresh_token_reuse

        def record_of(row: sa.Row[Any]) -> ReuseMarker:
            return ReuseMarker(
                token_hash=row.refresh_token_hash, grant_id=row.grant_id or "", exp=row.exp
            )

        return await self._export(
            sa.select(m).where(m.c.exp > now), m.c.refresh_token_hash, cursor, limit, record_of
        )

    async def import_reuse_markers(self, records: tuple[ReuseMarker, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_reuse_markers`."""
        live = [r for r in _last_wins(records, lambda r: r.token_hash) if r.exp > now]
        if not live:
            return 0
        rows = [
            {"refresh_token_hash": r.token_hash, "exp": r.exp, "grant_id": r.grant_id}
            for r in live
        ]
        m = t.refresh_token_reuse

        async def work(conn: AsyncConnection) -> int:
            changed = await _upsert_changed(
                conn, m, rows, "refresh_token_hash", _later_exp(m, now)
            )
            changed |= await _delete_counting_live(
                conn, t.refresh_tokens, "refresh_token_hash", [r.token_hash for r in live], now
            )
            return len(changed)

        return await self._transaction(work)

    # Ephemeral state

    async def export_claims(self, cursor: str | None, limit: int, now: int) -> Batch[Claim]:
        """See :meth:`ports.store.EphemeralTransfer.export_claims`."""
        e = t.ephemeral_claims
        return await self._export(
            sa.select(e).where(e.c.exp > now), e.c.key, cursor, limit,
            lambda row: Claim(key=row.key, exp=row.exp),
        )

    async def import_claims(self, records: tuple[Claim, ...], now: int) -> int:
        """See :meth:`ports.store.EphemeralTransfer.import_claims`."""
        rows = [
            {"key": c.key, "exp": c.exp}
            for c in _last_wins(records, lambda c: c.key)
            if c.exp > now
        ]
        if not rows:
            return 0
        e = t.ephemeral_claims

        async def work(conn: AsyncConnection) -> int:
            return len(await _upsert_changed(conn, e, rows, "key", _later_exp(e, now)))

        return await self._transaction(work)

    # Sessions

    async def export_sessions(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[SessionRecord]:
        """See :meth:`ports.store.SessionTransfer.export_sessions`: live sessions by
        ``id_hash`` (one range scan of the primary key), then the grants of the page."""
        s = t.sessions
        size = max(limit, 1)
        stmt = sa.select(s).where(live_session(now))
        if cursor is not None:
            stmt = stmt.where(s.c.id_hash > cursor)
        stmt = stmt.order_by(s.c.id_hash).limit(size + 1)

        async def work(conn: AsyncConnection) -> Batch[SessionRecord]:
            rows = (await conn.execute(stmt)).all()
            page = rows[:size]
            grants = await session_grants_of(conn, [row.id_hash for row in page])
            return Batch(
                tuple(SessionRecord(session_from_row(row), tuple(grants.get(row.id_hash, ())))
                      for row in page),
                page[-1].id_hash if len(rows) > size else None,
            )

        return await self._autocommit(work)

    async def import_sessions(self, records: tuple[SessionRecord, ...], now: int) -> int:
        """See :meth:`ports.store.SessionTransfer.import_sessions`. One transaction: the
        stored sessions of the batch are locked and read, merged in Python
        (:func:`domain.sessions.merge_sessions`), and only those that change are written;
        grants already held keep their place, new ones are added after them."""
        incoming = [r for r in records if r.session.live(now)]
        if not incoming:
            return 0
        s, g = t.sessions, t.session_grants
        hashes = list(dict.fromkeys(r.session.id_hash for r in incoming))

        async def work(conn: AsyncConnection) -> int:
            rows = await conn.execute(
                sa.select(s).where(s.c.id_hash.in_(hashes)).order_by(s.c.id_hash)
                .with_for_update()
            )
            held = {row.id_hash: session_from_row(row) for row in rows}
            live = {h: session for h, session in held.items() if session.live(now)}
            grants = await session_grants_of(conn, list(live))
            state: dict[str, tuple[Session, list[SessionGrant]]] = {
                h: (session, grants.get(h, [])) for h, session in live.items()
            }
            changed = 0
            touched: dict[str, None] = {}  # the sessions to write, in a set kept in order
            for record in incoming:
                key = record.session.id_hash
                before = state.get(key)
                merged = record.session if before is None else merge_sessions(
                    before[0], record.session)
                kept = list(before[1]) if before is not None else []
                kept += [grant for grant in dict.fromkeys(record.grants) if grant not in kept]
                if before == (merged, kept):
                    continue
                state[key] = (merged, kept)
                touched[key] = None
                changed += 1
            if not touched:
                return 0
            values = [session_values(state[h][0]) for h in touched]
            for chunk in _chunks(values):
                insert = pg_insert(s).values(list(chunk))
                await conn.execute(insert.on_conflict_do_update(
                    index_elements=["id_hash"],
                    set_={name: insert.excluded[name] for name in values[0]
                          if name != "id_hash"},
                ))
            # A session stored but no longer live is replaced whole, grants included.
            replaced = [h for h in touched if h in held and h not in live]
            if replaced:
                await conn.execute(sa.delete(g).where(g.c.id_hash.in_(replaced)))
            grant_rows = [
                {"id_hash": h, "client_id": grant.client_id, "grant_id": grant.grant_id}
                for h in touched for grant in state[h][1]
            ]
            for chunk in _chunks(grant_rows):
                await conn.execute(pg_insert(g).values(list(chunk)).on_conflict_do_nothing())
            return changed

        return await self._transaction(work)

    # Consents

    async def export_consents(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsentRecord]:
        """See :meth:`ports.store.ConsentTransfer.export_consents`: by (``user_id``,
        ``client_id``), one range scan of the primary key, then the live grants of the page.
        The cursor is the last key as ``user_id`` NUL ``client_id`` (no stored id holds a
        NUL)."""
        c = t.consents
        size = max(limit, 1)
        stmt = sa.select(c)
        if cursor is not None:
            user_id, _, client_id = cursor.partition("\x00")
            stmt = stmt.where(sa.tuple_(c.c.user_id, c.c.client_id)
                              > sa.tuple_(sa.literal(user_id), sa.literal(client_id)))
        stmt = stmt.order_by(c.c.user_id, c.c.client_id).limit(size + 1)

        async def work(conn: AsyncConnection) -> Batch[ConsentRecord]:
            rows = (await conn.execute(stmt)).all()
            page = [consent_from_row(row) for row in rows[:size]]
            keys = [(consent.user_id, consent.client_id) for consent in page]
            grants = await consent_grants_of(conn, keys, now)
            last = page[-1] if len(rows) > size else None
            return Batch(
                tuple(ConsentRecord(consent, tuple(grants.get(key, ())))
                      for consent, key in zip(page, keys, strict=True)),
                None if last is None else f"{last.user_id}\x00{last.client_id}",
            )

        return await self._autocommit(work)

    async def import_consents(self, records: tuple[ConsentRecord, ...], now: int) -> int:
        """See :meth:`ports.store.ConsentTransfer.import_consents`. One transaction: the
        stored consents of the batch are locked and read with their grants, merged in
        Python (:func:`domain.consent.merge_consents`), and only those that change are
        written."""
        if not records:
            return 0
        c, g = t.consents, t.consent_grants
        keys = list(dict.fromkeys((r.consent.user_id, r.consent.client_id) for r in records))

        async def work(conn: AsyncConnection) -> int:
            rows = await conn.execute(
                sa.select(c).where(sa.tuple_(c.c.user_id, c.c.client_id).in_(keys))
                .order_by(c.c.user_id, c.c.client_id).with_for_update()
            )
            held = {(row.user_id, row.client_id): consent_from_row(row) for row in rows}
            stored_grants = await consent_grants_of(conn, list(held), None)
            state: dict[tuple[str, str], tuple[Consent, dict[str, int]]] = {
                key: (consent, {gr.grant_id: gr.exp for gr in stored_grants.get(key, ())})
                for key, consent in held.items()
            }
            changed = 0
            touched: dict[tuple[str, str], None] = {}  # a set kept in order
            for record in records:
                key = (record.consent.user_id, record.consent.client_id)
                before = state.get(key)
                merged = record.consent if before is None else merge_consents(
                    before[0], record.consent)
                grants = dict(before[1]) if before is not None else {}
                for grant in record.grants:
                    if grant.exp > now:
                        grants[grant.grant_id] = max(grant.exp, grants.get(grant.grant_id, 0))
                if before == (merged, grants):
                    continue
                state[key] = (merged, grants)
                touched[key] = None
                changed += 1
            if not touched:
                return 0
            values = [consent_values(state[key][0]) for key in touched]
            for chunk in _chunks(values):
                insert = pg_insert(c).values(list(chunk))
                # Merged again in SQL, so that a consent granted meanwhile keeps its scopes.
                await conn.execute(insert.on_conflict_do_update(
                    index_elements=["user_id", "client_id"],
                    set_={"scopes": union_of_scopes(c.c.scopes, insert.excluded.scopes),
                          "created_at": sa.func.least(c.c.created_at, insert.excluded.created_at),
                          "updated_at": sa.func.greatest(c.c.updated_at,
                                                         insert.excluded.updated_at)},
                ))
            grant_rows = [
                {"user_id": key[0], "client_id": key[1], "grant_id": grant_id, "exp": exp}
                for key in touched for grant_id, exp in sorted(state[key][1].items())
            ]
            for chunk in _chunks(grant_rows):
                insert = pg_insert(g).values(list(chunk))
                await conn.execute(insert.on_conflict_do_update(
                    index_elements=["user_id", "client_id", "grant_id"],
                    set_={"exp": sa.func.greatest(g.c.exp, insert.excluded.exp)},
                ))
            return changed

        return await self._transaction(work)


async def _stored_members(
    conn: AsyncConnection, group_ids: Sequence[str]
) -> dict[str, list[Member]]:
    """Members as stored (value and type, in position order, no ``display``)."""
    if not group_ids:
        return {}
    gm = t.group_members
    rows = await conn.execute(
        sa.select(gm.c.group_id, gm.c.user_id, gm.c.member_type)
        .where(gm.c.group_id.in_(group_ids))
        .order_by(gm.c.group_id, gm.c.position)
    )
    found: dict[str, list[Member]] = {}
    for group_id, user_id, member_type in rows:
        found.setdefault(group_id, []).append(Member(value=user_id, type=member_type))
    return found

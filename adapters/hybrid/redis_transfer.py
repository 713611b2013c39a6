"""The transfer Protocols of :mod:`ports.store` over token state in Redis.

:class:`RedisTransfer` copies the key layout of ``redis_state.py`` (one Redis);
``cluster_transfer.py`` has the cluster's twin. Both page their exports through
:class:`KeySnapshots` and raise redis-py exceptions, which
:class:`~adapters.hybrid.store.HybridStore` translates.

Exports read the records of one kind by key name (``SCAN`` of ``P<kind>:*``, then
``MGET``), leaving out expired ones. Imports are Lua scripts (``scripts.py``): every
conditional write -- a revoked token stays revoked, a tombstone, marker or claim is only
lengthened, a consumed code or rotated refresh token is not stored again -- is decided and
done inside Redis. On one Redis a whole import call is one script: no other client ever
sees half a batch, and a lost connection leaves it run entirely or not at all (only a
corrupt stored value, which stops a script where it is, could leave part of one).
"""

from __future__ import annotations

import bisect
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, Protocol, TypeVar, cast

import msgspec
from redis.commands.core import AsyncScript

from adapters.hybrid import scripts
from adapters.hybrid.codec import Codec
from adapters.hybrid.redis_state import RedisTokenState, _glob_escape, _ttl
from domain.entities import AccessToken, AuthorizationCode, RefreshToken
from domain.errors import InvalidValue
from domain.records import Batch, Claim, ConsumedCodeRecord, ReuseMarker
from ports.store import CodeTransfer, EphemeralTransfer, TokenTransfer

R = TypeVar("R")
_SCAN_BATCH: Final = 1000
_KEPT_PASSES: Final = 8


class StateTransfer(CodeTransfer, TokenTransfer, EphemeralTransfer, Protocol):
    """The token-state transfer Protocols of the port, over Redis. Raises redis-py errors
    (and domain errors for records the store refuses)."""


class KeySnapshots:
    """The key names an export pages through: one sorted snapshot per pass.

    ``SCAN`` has no order and may return a key twice (when the key space is resized
    between two calls), so a ``SCAN`` cursor alone cannot promise each record exactly once
    over a pass. A pass therefore starts with one full ``SCAN`` of the kind's keys,
    de-duplicated and sorted by the records' own key (the hash, as memory and sql order
    them; ties by name), and pages through that list: the cursor is the pass's id and the
    last name of the batch, and the next batch is the names after it. Every record present
    throughout the pass is in the snapshot and comes exactly once; one written meanwhile
    may be missed, as in any copy of a live store.

    The snapshot is held in this process's memory (names only: roughly 150 bytes per key)
    until its pass ends; at most ``keep`` passes are held, the oldest dropped first. A
    cursor whose snapshot is not held (another process, a dropped pass) costs one new
    ``SCAN`` and goes on after its name, which keeps the promise.
    """

    __slots__ = ("_keep", "_passes")

    def __init__(self, keep: int = _KEPT_PASSES) -> None:
        self._keep = keep
        self._passes: OrderedDict[tuple[str, str], list[tuple[str, str]]] = OrderedDict()

    async def page(
        self,
        head: str,
        scan: Callable[[], AsyncIterator[bytes]],
        order: Callable[[str], str],
        cursor: str | None,
        limit: int,
        read: Callable[[list[str]], Awaitable[Sequence[R | None]]],
    ) -> Batch[R]:
        """The next batch of at most ``limit`` records.

        ``scan()`` yields the keys of the kind (``head`` and a name); ``order(name)`` is the
        record's sort key (its hash); ``read(names)`` gives each name's record, or None for
        one to leave out (gone, expired, not a record).
        """
        if cursor is None:
            pass_id, after = secrets.token_hex(8), None
        else:
            pass_id, colon, after = cursor.partition(":")
            if not colon:
                raise InvalidValue(f"{cursor!r} is not a cursor of this export")
        entries = self._passes.get((head, pass_id))
        if entries is None:
            names = {key.decode()[len(head):] async for key in scan()}
            entries = sorted((order(name), name) for name in names)
            self._hold((head, pass_id), entries)
        size = max(limit, 1)
        at = 0 if after is None else bisect.bisect_right(entries, (order(after), after))
        records: list[R] = []
        last = after
        while at < len(entries) and len(records) < size:
            # No more names than could still fit: the batch ends exactly at a name read.
            chunk = [name for _, name in entries[at : at + size - len(records)]]
            records.extend(r for r in await read(chunk) if r is not None)
            at += len(chunk)
            last = chunk[-1]
        if at >= len(entries):
            self._passes.pop((head, pass_id), None)
            return Batch(records=tuple(records), cursor=None)
        return Batch(records=tuple(records), cursor=f"{pass_id}:{last}")

    def _hold(self, key: tuple[str, str], entries: list[tuple[str, str]]) -> None:
        self._passes[key] = entries
        while len(self._passes) > self._keep:
            self._passes.popitem(last=False)


class KeyspaceTransfer:
    """The exports, over one key layout; subclasses say how to reach the keys and how a
    key name gives a record's hash, and implement the imports."""

    __slots__ = ("_codec", "_prefix", "_snapshots")

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._codec = Codec()
        self._snapshots = KeySnapshots()

    # What a layout provides

    def _scan(self, match: str) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def _mget(self, keys: list[str]) -> list[bytes | None]:
        raise NotImplementedError

    def _match(self, head: str) -> str:
        """The ``SCAN`` pattern of the keys of one kind."""
        return _glob_escape(head) + "*"

    def _code_hash(self, name: str) -> str:
        """The code hash in the name of a code's (or tombstone's) key."""
        return name

    def _token_hash(self, name: str, grant_id: str | None) -> str:
        """The token hash in the name of a token's (or marker's) key."""
        return name

    def _token_order(self, name: str) -> str:
        """A token key's place in an export, before its record is read: its hash."""
        return name

    def _is_record(self, data: bytes) -> bool:
        """Whether a token key's value is a record (not a pointer to one)."""
        return True

    # Exports

    async def _export(
        self,
        kind: str,
        cursor: str | None,
        limit: int,
        decode: Callable[[str, bytes], R | None],
        order: Callable[[str], str] | None = None,
    ) -> Batch[R]:
        head = f"{self._prefix}{kind}:"

        async def read(names: list[str]) -> list[R | None]:
            values = await self._mget([head + name for name in names])
            return [
                None if value is None else decode(name, value)
                for name, value in zip(names, values, strict=True)
            ]

        return await self._snapshots.page(
            head, lambda: self._scan(self._match(head)), order or self._token_order,
            cursor, limit, read,
        )

    async def export_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AuthorizationCode]:
        """See :meth:`ports.store.CodeTransfer.export_codes`."""
        def decode(name: str, data: bytes) -> AuthorizationCode | None:
            code = self._codec.decode_code(self._code_hash(name), data)
            return code if code.exp > now else None

        return await self._export("c", cursor, limit, decode, self._code_hash)

    async def export_consumed_codes(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ConsumedCodeRecord]:
        """See :meth:`ports.store.CodeTransfer.export_consumed_codes`."""
        def decode(name: str, data: bytes) -> ConsumedCodeRecord | None:
            tomb = self._codec.decode_tombstone(data)
            if tomb.exp <= now:
                return None
            return ConsumedCodeRecord(
                code_hash=self._code_hash(name), grant_id=tomb.grant_id,
                client_id=tomb.client_id, exp=tomb.exp,
            )

        return await self._export("cx", cursor, limit, decode, self._code_hash)

    async def export_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccessToken]:
        """See :meth:`ports.store.TokenTransfer.export_access_tokens`."""
        def decode(name: str, data: bytes) -> AccessToken | None:
            if not self._is_record(data):
                return None
            token = self._codec.decode_access(name, data)
            if token.exp <= now:
                return None
            token_hash = self._token_hash(name, token.grant_id)
            if token_hash != name:
                token = msgspec.structs.replace(token, token_hash=token_hash)
            return token

        return await self._export("t", cursor, limit, decode)

    async def export_refresh_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[RefreshToken]:
        """See :meth:`ports.store.TokenTransfer.export_refresh_tokens`."""
        def decode(name: str, data: bytes) -> RefreshToken | None:
            if not self._is_record(data):
                return None
            token = self._codec.decode_refresh(name, data)
            if token.exp <= now:
                return None
            token_hash = self._token_hash(name, token.grant_id)
            if token_hash != name:
                token = msgspec.structs.replace(token, token_hash=token_hash)
            return token

        return await self._export("r", cursor, limit, decode)

    async def export_reuse_markers(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[ReuseMarker]:
        """See :meth:`ports.store.TokenTransfer.export_reuse_markers`."""
        def decode(name: str, data: bytes) -> ReuseMarker | None:
            marker = self._codec.decode_marker(data)
            if marker.exp <= now:
                return None
            return ReuseMarker(
                token_hash=self._token_hash(name, marker.grant_id), grant_id=marker.grant_id,
                exp=marker.exp,
            )

        return await self._export("ru", cursor, limit, decode)

    async def export_claims(self, cursor: str | None, limit: int, now: int) -> Batch[Claim]:
        """See :meth:`ports.store.EphemeralTransfer.export_claims`."""
        def decode(name: str, data: bytes) -> Claim | None:
            exp = int(data)
            return Claim(key=name, exp=exp) if exp > now else None

        return await self._export("o", cursor, limit, decode, str)


class RedisTransfer(KeyspaceTransfer):
    """:class:`StateTransfer` for :class:`~adapters.hybrid.redis_state.RedisTokenState`.

    Each import is one script over the whole batch, which also maintains the index sets
    (``g:<grant>``, ``s:<sub>``) as ``save_code`` and ``save_tokens`` do.
    """

    __slots__ = (
        "_client",
        "_import_access",
        "_import_claims",
        "_import_codes",
        "_import_consumed",
        "_import_markers",
        "_import_refresh",
    )

    def __init__(self, state: RedisTokenState) -> None:
        super().__init__(state._prefix)
        client = self._client = state.client
        self._import_codes = client.register_script(scripts.IMPORT_CODES)
        self._import_consumed = client.register_script(scripts.IMPORT_CONSUMED_CODES)
        self._import_access = client.register_script(scripts.IMPORT_ACCESS)
        self._import_refresh = client.register_script(scripts.IMPORT_REFRESH)
        self._import_markers = client.register_script(scripts.IMPORT_MARKERS)
        self._import_claims = client.register_script(scripts.IMPORT_CLAIMS)

    def _scan(self, match: str) -> AsyncIterator[bytes]:
        return self._client.scan_iter(match=match, count=_SCAN_BATCH)

    async def _mget(self, keys: list[str]) -> list[bytes | None]:
        return cast(list[bytes | None], await self._client.mget(keys))

    async def _run(self, script: AsyncScript, keys: list[str], args: list[Any]) -> int:
        if not keys:
            return 0
        return int(await script(keys=keys, args=args))

    async def import_codes(self, records: tuple[AuthorizationCode, ...], now: int) -> int:
        """See :meth:`ports.store.CodeTransfer.import_codes`."""
        p = self._prefix
        keys: list[str] = []
        args: list[Any] = [now]
        for code in records:
            if code.exp > now:
                keys += [f"{p}c:{code.code_hash}", f"{p}cx:{code.code_hash}"]
                args += [
                    self._codec.encode_code(code), _ttl(code.exp, now), "c:" + code.code_hash,
                    f"{p}s:{code.user_id}" if code.user_id is not None else "",
                ]
        return await self._run(self._import_codes, keys, args)

    async def import_consumed_codes(
        self, records: tuple[ConsumedCodeRecord, ...], now: int
    ) -> int:
        """See :meth:`ports.store.CodeTransfer.import_consumed_codes`."""
        p = self._prefix
        keys: list[str] = []
        args: list[Any] = [now]
        for tomb in records:
            if tomb.exp > now:
                keys += [f"{p}cx:{tomb.code_hash}", f"{p}c:{tomb.code_hash}"]
                args += [tomb.exp, tomb.grant_id, tomb.client_id]
        return await self._run(self._import_consumed, keys, args)

    async def import_access_tokens(self, records: tuple[AccessToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_access_tokens`. A token of a grant
        revoked here (flagged ``x``) is stored revoked, as ``save_tokens`` stores it."""
        p = self._prefix
        keys: list[str] = []
        args: list[Any] = [now]
        for token in records:
            if token.exp > now:
                keys.append(f"{p}t:{token.token_hash}")
                args += [
                    self._codec.encode_access(token), _ttl(token.exp, now),
                    "t:" + token.token_hash,
                    f"{p}g:{token.grant_id}" if token.grant_id is not None else "",
                    f"{p}s:{token.sub}" if token.sub is not None else "",
                ]
        return await self._run(self._import_access, keys, args)

    async def import_refresh_tokens(self, records: tuple[RefreshToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_refresh_tokens`. A token of a grant
        revoked here is not stored, as ``save_tokens`` drops it."""
        p = self._prefix
        keys: list[str] = []
        args: list[Any] = [now]
        for token in records:
            if token.exp > now:
                keys += [f"{p}r:{token.token_hash}", f"{p}ru:{token.token_hash}"]
                args += [
                    self._codec.encode_refresh(token), _ttl(token.exp, now),
                    "r:" + token.token_hash, f"{p}g:{token.grant_id}",
                    f"{p}s:{token.sub}" if token.sub is not None else "",
                ]
        return await self._run(self._import_refresh, keys, args)

    async def import_reuse_markers(self, records: tuple[ReuseMarker, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_reuse_markers`."""
        p = self._prefix
        keys: list[str] = []
        args: list[Any] = [now, f"{p}s:"]
        for marker in records:
            if marker.exp > now:
                keys += [f"{p}ru:{marker.token_hash}", f"{p}r:{marker.token_hash}"]
                args += [
                    marker.exp, marker.grant_id, "r:" + marker.token_hash,
                    f"{p}g:{marker.grant_id}",
                ]
        return await self._run(self._import_markers, keys, args)

    async def import_claims(self, records: tuple[Claim, ...], now: int) -> int:
        """See :meth:`ports.store.EphemeralTransfer.import_claims`."""
        keys: list[str] = []
        args: list[Any] = [now]
        for claim in records:
            if claim.exp > now:
                keys.append(f"{self._prefix}o:{claim.key}")
                args.append(claim.exp)
        return await self._run(self._import_claims, keys, args)

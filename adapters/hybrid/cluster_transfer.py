"""The transfer Protocols of :mod:`ports.store` over token state in a Redis Cluster.

The twin of ``redis_transfer.py`` for the key layout of ``cluster_state.py``: the same
exports (a ``SCAN`` of every master; pointers ``@<grant>`` are left out) and the same
import scripts, called once per hash slot with the records whose keys are in it -- all
records of one grant, or the code and tombstone of one code.

A Redis Cluster has no transaction across slots, so an import call is atomic per slot,
not as a whole: a failure midway leaves some slots of the batch written, each record
whole, and rerunning the import (which is idempotent) finishes it. Writes go in the order
``save_tokens`` uses: pointers and subject entries first (a pointer to a record not yet
written reads as nothing), then the records. Pointers never change (instances remember
them), so a token that this cluster holds under another grant than the record's is
refused with ``Conflict`` before anything of the batch is written; through the port a
token's grant never changes, so only a foreign or corrupted record can do that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final, cast

from adapters.hybrid import scripts
from adapters.hybrid.cluster_state import POINTER, ClusterTokenState, _index, _Script, grant_tag
from adapters.hybrid.redis_state import _glob_escape, _ttl
from adapters.hybrid.redis_transfer import KeyspaceTransfer
from domain.entities import AccessToken, AuthorizationCode, RefreshToken
from domain.errors import Conflict
from domain.records import Claim, ConsumedCodeRecord, ReuseMarker

_SCAN_BATCH: Final = 1000
# Scripts in flight at once during an import, one per slot (a batch spans many slots).
_IN_FLIGHT: Final = 32

# Keys and arguments of one script call: the records of one slot.
_Groups = dict[int, tuple[list[str], list[Any]]]


class ClusterTransfer(KeyspaceTransfer):
    """:class:`~adapters.hybrid.redis_transfer.StateTransfer` for
    :class:`~adapters.hybrid.cluster_state.ClusterTokenState`."""

    __slots__ = (
        "_client",
        "_import_access",
        "_import_claims",
        "_import_codes",
        "_import_consumed",
        "_import_markers",
        "_import_refresh",
    )

    def __init__(self, state: ClusterTokenState) -> None:
        super().__init__(state._prefix)
        client = self._client = state.client
        self._import_codes = _Script(client, scripts.IMPORT_CODES)
        self._import_consumed = _Script(client, scripts.IMPORT_CONSUMED_CODES)
        self._import_access = _Script(client, scripts.IMPORT_ACCESS)
        self._import_refresh = _Script(client, scripts.IMPORT_REFRESH)
        self._import_markers = _Script(client, scripts.IMPORT_MARKERS)
        self._import_claims = _Script(client, scripts.IMPORT_CLAIMS)

    # The layout

    def _scan(self, match: str) -> AsyncIterator[bytes]:
        return self._client.scan_iter(match=match, count=_SCAN_BATCH)

    async def _mget(self, keys: list[str]) -> list[bytes | None]:
        return cast(list[bytes | None], await self._client.mget_nonatomic(keys))

    def _match(self, head: str) -> str:
        # Refresh-token keys without a tag are all pointers: leave them to the server.
        tagged = head in (f"{self._prefix}r:", f"{self._prefix}ru:")
        return _glob_escape(head) + ("{*" if tagged else "*")

    def _code_hash(self, name: str) -> str:
        return name[1:-1]  # {<hash>}

    def _token_hash(self, name: str, grant_id: str | None) -> str:
        if grant_id is not None:
            tag = grant_tag(grant_id)
            if name.startswith(tag):
                return name[len(tag):]
        return name

    def _token_order(self, name: str) -> str:
        # <hash>, or {g:<grant>}<hash>: the tag ends at its first "}" (as Redis reads it).
        end = name.find("}")
        return name[end + 1:] if name.startswith("{") and end > 0 else name

    def _is_record(self, data: bytes) -> bool:
        return data[:1] != POINTER

    def _in_grant(self, kind: str, grant_id: str, token_hash: str) -> str:
        return f"{self._prefix}{kind}:{grant_tag(grant_id)}{token_hash}"

    def _grant_set(self, grant_id: str) -> str:
        return f"{self._prefix}g:{grant_tag(grant_id)}"

    # Steps of an import

    async def _check_pointers(self, kind: str, tokens: list[tuple[str, str | None]]) -> None:
        """Refuse the batch when a token (hash, grant) is held here under another grant,
        or with a grant when the record has none (and the other way round)."""
        if not tokens:
            return
        p = self._prefix
        held = cast(list[bytes | None], await self._client.mget_nonatomic(
            [f"{p}{kind}:{token_hash}" for token_hash, _ in tokens]
        ))
        for (token_hash, grant_id), value in zip(tokens, held, strict=True):
            if value is None:
                continue
            is_pointer = value[:1] == POINTER
            if (grant_id is None and is_pointer) or (
                grant_id is not None and value != POINTER + grant_id.encode()
            ):
                raise Conflict(
                    f"token {token_hash[:12]}... belongs to another grant in this store "
                    "(a token's grant never changes)",
                    "grant_id",
                )

    async def _pipeline(self, writes: Iterable[tuple[str, str, str, int]]) -> None:
        """Pointers (``("pointer", key, grant, ttl)``) and subject-set entries
        (``("index", key, member, ttl)``), in one pipeline, each key in its own slot.
        A pointer is never shortened: it may already point at a longer-lived record."""
        pipe = self._client.pipeline()
        queued = False
        for what, key, value, ttl in writes:
            queued = True
            if what == "pointer":
                pipe.set(key, POINTER + value.encode(), ex=ttl, nx=True)
                pipe.pexpire(key, ttl * 1000, gt=True)
            else:
                _index(pipe, key, value, ttl)
        if queued:
            await pipe.execute()

    def _add(self, groups: _Groups, keys: list[str], args: list[Any]) -> None:
        group = groups.setdefault(self._client.keyslot(keys[0]), ([], []))
        group[0].extend(keys)
        group[1].extend(args)

    async def _run(self, script: _Script, head: list[Any], groups: _Groups) -> int:
        calls = list(groups.values())
        changed = 0
        for start in range(0, len(calls), _IN_FLIGHT):
            replies = await asyncio.gather(*(
                script(keys=keys, args=[*head, *args])
                for keys, args in calls[start : start + _IN_FLIGHT]
            ))
            changed += sum(int(reply) for reply in replies)
        return changed

    # Imports

    async def import_codes(self, records: tuple[AuthorizationCode, ...], now: int) -> int:
        """See :meth:`ports.store.CodeTransfer.import_codes`."""
        p = self._prefix
        live = [code for code in records if code.exp > now]
        await self._pipeline(
            ("index", f"{p}s:{code.user_id}", "c:" + code.code_hash, _ttl(code.exp, now))
            for code in live if code.user_id is not None
        )
        groups: _Groups = {}
        for code in live:
            self._add(
                groups, [f"{p}c:{{{code.code_hash}}}", f"{p}cx:{{{code.code_hash}}}"],
                [self._codec.encode_code(code), _ttl(code.exp, now), "c:" + code.code_hash, ""],
            )
        return await self._run(self._import_codes, [now], groups)

    async def import_consumed_codes(
        self, records: tuple[ConsumedCodeRecord, ...], now: int
    ) -> int:
        """See :meth:`ports.store.CodeTransfer.import_consumed_codes`."""
        p = self._prefix
        groups: _Groups = {}
        for tomb in records:
            if tomb.exp > now:
                self._add(
                    groups, [f"{p}cx:{{{tomb.code_hash}}}", f"{p}c:{{{tomb.code_hash}}}"],
                    [tomb.exp, tomb.grant_id, tomb.client_id],
                )
        return await self._run(self._import_consumed, [now], groups)

    async def import_access_tokens(self, records: tuple[AccessToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_access_tokens`. A token of a grant
        revoked here (flagged ``x``) is stored revoked, as ``save_tokens`` stores it."""
        p = self._prefix
        live = [token for token in records if token.exp > now]
        await self._check_pointers("t", [(t.token_hash, t.grant_id) for t in live])
        writes: list[tuple[str, str, str, int]] = []
        groups: _Groups = {}
        for token in live:
            ttl = _ttl(token.exp, now)
            member = "t:" + token.token_hash
            grant = token.grant_id
            if grant is None:
                key, grant_set = f"{p}t:{token.token_hash}", ""
            else:
                key = self._in_grant("t", grant, token.token_hash)
                grant_set = self._grant_set(grant)
                writes.append(("pointer", f"{p}t:{token.token_hash}", grant, ttl))
            if token.sub is not None:
                writes.append(
                    ("index", f"{p}s:{token.sub}", member if grant is None else f"g:{grant}", ttl)
                )
            self._add(
                groups, [key], [self._codec.encode_access(token), ttl, member, grant_set, ""]
            )
        await self._pipeline(writes)
        return await self._run(self._import_access, [now], groups)

    async def import_refresh_tokens(self, records: tuple[RefreshToken, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_refresh_tokens`. A token of a grant
        revoked here is not stored, as ``save_tokens`` drops it."""
        p = self._prefix
        live = [token for token in records if token.exp > now]
        await self._check_pointers("r", [(t.token_hash, t.grant_id) for t in live])
        writes: list[tuple[str, str, str, int]] = []
        groups: _Groups = {}
        for token in live:
            ttl = _ttl(token.exp, now)
            grant = token.grant_id
            writes.append(("pointer", f"{p}r:{token.token_hash}", grant, ttl))
            if token.sub is not None:
                writes.append(("index", f"{p}s:{token.sub}", f"g:{grant}", ttl))
            self._add(
                groups,
                [self._in_grant("r", grant, token.token_hash),
                 self._in_grant("ru", grant, token.token_hash)],
                [self._codec.encode_refresh(token), ttl, "r:" + token.token_hash,
                 self._grant_set(grant), ""],
            )
        await self._pipeline(writes)
        return await self._run(self._import_refresh, [now], groups)

    async def import_reuse_markers(self, records: tuple[ReuseMarker, ...], now: int) -> int:
        """See :meth:`ports.store.TokenTransfer.import_reuse_markers`. The token's pointer
        is written too: a rotated token is found by it, to be recognised as reused."""
        p = self._prefix
        live = [marker for marker in records if marker.exp > now]
        await self._check_pointers("r", [(m.token_hash, m.grant_id) for m in live])
        await self._pipeline(
            ("pointer", f"{p}r:{m.token_hash}", m.grant_id, _ttl(m.exp, now)) for m in live
        )
        groups: _Groups = {}
        for marker in live:
            grant = marker.grant_id
            self._add(
                groups,
                [self._in_grant("ru", grant, marker.token_hash),
                 self._in_grant("r", grant, marker.token_hash)],
                [marker.exp, grant, "r:" + marker.token_hash, self._grant_set(grant)],
            )
        # Subject sets list grants here, not tokens: nothing to remove from them.
        return await self._run(self._import_markers, [now, ""], groups)

    async def import_claims(self, records: tuple[Claim, ...], now: int) -> int:
        """See :meth:`ports.store.EphemeralTransfer.import_claims`."""
        groups: _Groups = {}
        for claim in records:
            if claim.exp > now:
                self._add(groups, [f"{self._prefix}o:{claim.key}"], [claim.exp])
        return await self._run(self._import_claims, [now], groups)

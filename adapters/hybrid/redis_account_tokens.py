"""Account tokens (password-reset and email-verification links) in Redis (one server or a
cluster): one round trip and one Lua script per port call (``scripts.py``, "Account
tokens").

Every key of the part carries the hash tag ``{at}``, so on a Redis Cluster they all live in
one slot. That is what makes each call one atomic script: a take knows only the token's
hash and a revoke only the user, so no tag derived from either could put a token and the
index of its user's tokens in one slot; with a per-token tag, a revoke could not forget a
user's tokens in one step, and a save racing it could write a token the revoke never saw.
One slot is enough: a link is created once per reset or verification mail, and those are
throttled per address and per user (a few a minute, not thousands a second).

Methods raise redis-py exceptions; :class:`~adapters.hybrid.account_tokens.HybridAccountTokens`
turns them into ``StoreUnavailable``.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from adapters.hybrid import scripts
from adapters.hybrid.cluster_state import ClusterTokenState, _Script
from adapters.hybrid.redis_state import RedisTokenState, SharedTokenState, _ttl
from domain.entities import AccountToken, AccountTokenKind
from domain.records import Batch

#: The hash tag of every key of the part.
TAG: Final = "{at}"


class _Run(Protocol):
    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any: ...


_encode = msgspec.json.Encoder(order="deterministic").encode
_decode = msgspec.json.Decoder(AccountToken).decode


def account_tokens_of(state: SharedTokenState) -> RedisAccountTokens:
    """The account-token part on the Redis (or cluster) that ``state`` uses, under its
    prefix."""
    if isinstance(state, RedisTokenState | ClusterTokenState):
        return RedisAccountTokens(state.client, state._prefix)
    raise TypeError(f"no account-token part for {type(state).__name__}")


def _fields(token: AccountToken, now: int) -> list[str | bytes | int]:
    """The six script arguments of one token (``SAVE_ACCOUNT_TOKEN``)."""
    return [token.token_hash, token.kind, token.user_id, token.exp, _ttl(token.exp, now),
            _encode(token)]


class RedisAccountTokens:
    """The account-token part of the port on ``client`` (a :class:`Redis` or a
    :class:`RedisCluster`), under the key prefix ``prefix``; see the module docstring."""

    __slots__ = (
        "_by_exp",
        "_export",
        "_head",
        "_ids",
        "_import",
        "_purge",
        "_revoke",
        "_save",
        "_take",
        "_user_head",
        "client",
    )

    def __init__(self, client: Redis | RedisCluster, prefix: str) -> None:
        self.client = client
        self._head = f"{prefix}at:{TAG}"
        self._user_head = f"{prefix}atu:{TAG}"
        self._ids = f"{prefix}ats:{TAG}"
        self._by_exp = f"{prefix}ate:{TAG}"

        def script(source: str) -> _Run:
            if isinstance(client, RedisCluster):
                # Reloaded on the node that owns the slot after a failover (cluster_state).
                return _Script(client, source)
            run: _Run = client.register_script(source)
            return run

        self._save = script(scripts.SAVE_ACCOUNT_TOKEN)
        self._take = script(scripts.TAKE_ACCOUNT_TOKEN)
        self._revoke = script(scripts.REVOKE_ACCOUNT_TOKENS)
        self._export = script(scripts.EXPORT_ACCOUNT_TOKENS)
        self._import = script(scripts.IMPORT_ACCOUNT_TOKENS)
        self._purge = script(scripts.PURGE_ACCOUNT_TOKENS)

    def _user_index(self, kind: str, user_id: str) -> str:
        # The kind comes first and is one of a fixed set without ':', so no user id can
        # name another pair's index.
        return f"{self._user_head}{kind}:{user_id}"

    # AccountTokenStore

    async def save_account_token(self, token: AccountToken, now: int) -> None:
        await self._save(
            keys=[self._head + token.token_hash, self._user_index(token.kind, token.user_id),
                  self._ids, self._by_exp],
            args=[now, self._head, self._user_head, *_fields(token, now)],
        )

    async def take_account_token(
        self, kind: AccountTokenKind, token_hash: str, now: int
    ) -> AccountToken | None:
        reply: bytes | None = await self._take(
            keys=[self._head + token_hash, self._ids, self._by_exp],
            args=[now, kind, self._user_head, token_hash],
        )
        return None if reply is None else _decode(reply)

    async def revoke_account_tokens(
        self, user_id: str, kind: AccountTokenKind, now: int
    ) -> int:
        return int(await self._revoke(
            keys=[self._user_index(kind, user_id), self._ids, self._by_exp],
            args=[now, self._head, self._user_head, kind, user_id],
        ))

    # AccountTokenTransfer

    async def export_account_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[AccountToken]:
        reply: list[Any] = await self._export(
            keys=[self._ids],
            args=[now, self._head, "-" if cursor is None else "(" + cursor, max(limit, 1)],
        )
        return Batch(tuple(_decode(data) for data in reply[1:]), reply[0].decode() or None)

    async def import_account_tokens(self, records: tuple[AccountToken, ...], now: int) -> int:
        live = [record for record in records if now < record.exp]
        if not live:
            return 0
        args: list[str | bytes | int] = [now, self._head, self._user_head]
        for record in live:
            args += _fields(record, now)
        # One script per call: the batch is written whole or not at all.
        return int(await self._import(keys=[self._ids, self._by_exp], args=args))

    # Administration

    async def count_live(self, now: int) -> int:
        """Live tokens: one ``ZCOUNT`` of the expiry index."""
        return int(await self.client.zcount(self._by_exp, f"({now}", "+inf"))

    async def purge(self, now: int, batch_size: int) -> int:
        """Remove the tokens expired by ``now``, a batch per script; how many tokens were
        deleted (index entries of keys Redis already expired are dropped but not counted:
        Redis removed those)."""
        size = max(batch_size, 1)
        deleted = 0
        while True:
            reply: list[Any] = await self._purge(
                keys=[self._ids, self._by_exp], args=[now, self._head, self._user_head, size],
            )
            deleted += int(reply[1])
            if int(reply[0]) < size:
                return deleted

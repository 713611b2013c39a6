"""Token state in one Redis: one round trip per port call, one Lua script per atomic step.

Methods here raise redis-py exceptions; :class:`~adapters.hybrid.store.HybridStore`
decides what an error means (fall back to memory, report degraded). ``SharedTokenState``
is what the store needs of it, and of its Redis Cluster twin (``cluster_state.py``).
"""

from __future__ import annotations

from typing import Any, Final, Protocol, cast

from redis.asyncio import Redis

from adapters.hybrid import scripts
from adapters.hybrid.codec import Codec
from domain.entities import (
    AccessToken,
    AuthorizationCode,
    ConsumedCode,
    RefreshTake,
    RefreshToken,
    Reused,
    Taken,
    Unknown,
)

# How long a revoked-grant flag is kept when the grant has no live tokens yet (a code
# replay that beat the first token response): longer than any take-then-save window.
REVOKED_GRANT_FLAG_MS: Final = 3_600_000
_SCAN_BATCH: Final = 1000


def _ttl(exp: int, now: int) -> int:
    """Seconds a key must live: the record's remaining lifetime, at least 1."""
    return max(exp - now, 1)


class SharedTokenState(Protocol):
    """Token state shared through Redis (one server or a cluster). Raises redis-py errors."""

    async def ping(self) -> None: ...
    async def close(self) -> None: ...
    async def save_code(self, code: AuthorizationCode, now: int) -> None: ...
    async def take_code(
        self, code_hash: str, now: int, remember_until: int, taker: str
    ) -> AuthorizationCode | ConsumedCode | None:
        """Take the code once. ``taker`` names the call: asked again with the same
        ``taker`` (its first answer lost), the take answers the same."""
        ...
    async def save_tokens(
        self, access: AccessToken, refresh: RefreshToken | None, now: int
    ) -> bool: ...
    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None: ...
    async def revoke_access_token(self, token_hash: str, now: int) -> bool: ...
    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None: ...
    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake: ...
    async def revoke_grant(self, grant_id: str, now: int) -> int: ...
    async def revoke_subject(self, sub: str, now: int) -> int: ...
    async def claim_once(self, key: str, exp: int, now: int) -> bool: ...
    async def hit(self, key: str, window_seconds: int, now: int, amount: int) -> int: ...
    async def count_live(self, kind: str, now: int) -> int: ...


class RedisTokenState:
    """Codes, tokens, reuse markers, claims and counters under ``prefix`` in one Redis.

    Key layout (``P`` is the prefix, hashes are SHA-256 hex):
    ``Pc:<hash>`` code, ``Pcx:<hash>`` consumed-code tombstone, ``Pcr:<hash>`` the taken
    code's copy for its taker asking again (scripts.TAKE_CODE), ``Pt:<hash>`` access token,
    ``Pr:<hash>`` refresh token, ``Pru:<hash>`` reuse marker, ``Pg:<grant>`` and
    ``Ps:<sub>`` index sets, ``Po:<key>`` claims, ``Ph:<window>:<key>`` counters.
    """

    __slots__ = (
        "_access_prefix",
        "_claim_once",
        "_codec",
        "_hit",
        "_prefix",
        "_revoke_access",
        "_revoke_grant",
        "_revoke_subject",
        "_save_code",
        "_save_tokens",
        "_take_code",
        "_take_refresh",
        "client",
    )

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self._prefix = prefix
        self._access_prefix = prefix + "t:"
        self._codec = Codec()
        # register_script runs EVALSHA, and reloads the script by itself after a restart
        # of Redis (NOSCRIPT), so the source travels once, not with every call.
        self._save_code = client.register_script(scripts.SAVE_CODE)
        self._take_code = client.register_script(scripts.TAKE_CODE)
        self._save_tokens = client.register_script(scripts.SAVE_TOKENS)
        self._revoke_access = client.register_script(scripts.REVOKE_ACCESS)
        self._take_refresh = client.register_script(scripts.TAKE_REFRESH)
        self._revoke_grant = client.register_script(scripts.REVOKE_GRANT)
        self._revoke_subject = client.register_script(scripts.REVOKE_SUBJECT)
        self._claim_once = client.register_script(scripts.CLAIM_ONCE)
        self._hit = client.register_script(scripts.HIT)

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()

    async def _get(self, key: str) -> bytes | None:
        """One ``GET``, on the hot read of every introspection and bearer request.

        The connection pool's own path, without ``Redis.execute_command``'s wrapping: its
        retry object (the client retries nothing anyway), observability recorders and
        per-command dispatch cost a fifth of a GET's CPU (26 of 117 us). The connection's
        socket timeouts still apply and raise redis-py's ``TimeoutError``; errors are the
        same redis-py exceptions the store translates. A connection interrupted in any way
        (error, cancellation) is closed, never handed back with a reply unread: redis-py's
        connection does so itself, and the ``except`` keeps it so whatever it changes.
        """
        pool = self.client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped upstream
        try:
            await conn.send_packed_command(conn.pack_command("GET", key), check_health=False)
            return cast(bytes | None, await conn.read_response())
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        finally:
            await pool.release(conn)

    # Codes

    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        p = self._prefix
        subject_set = f"{p}s:{code.user_id}" if code.user_id is not None else ""
        await self._save_code(
            keys=[f"{p}c:{code.code_hash}", subject_set],
            args=[self._codec.encode_code(code), _ttl(code.exp, now), "c:" + code.code_hash],
        )

    async def take_code(
        self, code_hash: str, now: int, remember_until: int, taker: str
    ) -> AuthorizationCode | ConsumedCode | None:
        p = self._prefix
        reply: list[Any] = await self._take_code(
            keys=[f"{p}c:{code_hash}", f"{p}cx:{code_hash}", f"{p}cr:{code_hash}"],
            args=[now, remember_until, taker],
        )
        if reply[0] == 1:
            return self._codec.decode_code(code_hash, reply[1])
        if reply[0] == 2:
            return Codec.consumed_code(code_hash, reply[1], reply[2])
        return None

    # Tokens

    async def save_tokens(
        self, access: AccessToken, refresh: RefreshToken | None, now: int
    ) -> bool:
        """Store the pair; False when its grant was revoked (then stored revoked)."""
        p = self._prefix
        keys = [
            self._access_prefix + access.token_hash,
            "",
            f"{p}g:{access.grant_id}" if access.grant_id is not None else "",
            f"{p}s:{access.sub}" if access.sub is not None else "",
            "",
            "",
        ]
        args: list[bytes | str | int] = [
            self._codec.encode_access(access),
            _ttl(access.exp, now),
            b"",
            0,
            "t:" + access.token_hash,
            "",
        ]
        if refresh is not None:
            keys[1] = f"{p}r:{refresh.token_hash}"
            keys[4] = f"{p}g:{refresh.grant_id}"
            keys[5] = f"{p}s:{refresh.sub}" if refresh.sub is not None else ""
            args[2] = self._codec.encode_refresh(refresh)
            args[3] = _ttl(refresh.exp, now)
            args[5] = "r:" + refresh.token_hash
        return bool(await self._save_tokens(keys=keys, args=args) == 0)

    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None:
        data = await self._get(self._access_prefix + token_hash)
        if data is None:
            return None
        token = self._codec.decode_access(token_hash, data)
        return token if token.exp > now else None

    async def revoke_access_token(self, token_hash: str, now: int) -> bool:
        reply = await self._revoke_access(keys=[self._access_prefix + token_hash], args=[now])
        return bool(reply)

    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        data = await self._get(f"{self._prefix}r:{token_hash}")
        if data is None:
            return None
        token = self._codec.decode_refresh(token_hash, data)
        return token if token.exp > now else None

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        p = self._prefix
        reply: list[Any] = await self._take_refresh(
            keys=[f"{p}r:{token_hash}", f"{p}ru:{token_hash}"],
            args=[now, p, token_hash, REVOKED_GRANT_FLAG_MS, ""],
        )
        if reply[0] == 1:
            return Taken(self._codec.decode_refresh(token_hash, reply[1]))
        if reply[0] == 2:
            return Reused(reply[1].decode())
        return Unknown()

    async def revoke_grant(self, grant_id: str, now: int) -> int:
        p = self._prefix
        reply = await self._revoke_grant(
            keys=[f"{p}g:{grant_id}"], args=[now, p, REVOKED_GRANT_FLAG_MS, ""]
        )
        return int(reply)

    async def revoke_subject(self, sub: str, now: int) -> int:
        p = self._prefix
        reply = await self._revoke_subject(keys=[f"{p}s:{sub}"], args=[now, p])
        return int(reply)

    # Ephemeral state

    async def claim_once(self, key: str, exp: int, now: int) -> bool:
        reply = await self._claim_once(keys=[f"{self._prefix}o:{key}"], args=[now, exp])
        return bool(reply)

    async def hit(self, key: str, window_seconds: int, now: int, amount: int) -> int:
        window = now // window_seconds
        left = (window + 1) * window_seconds - now
        reply = await self._hit(
            keys=[f"{self._prefix}h:{window}:{key}"], args=[amount, max(left, 1)]
        )
        return int(reply)

    # Administration

    async def count_live(self, kind: str, now: int) -> int:
        """Unexpired records of one kind (``c``, ``t`` or ``r``). A full SCAN: for metrics,
        not for requests."""
        exp_of = {
            "c": self._codec.code_exp,
            "t": self._codec.access_exp,
            "r": self._codec.refresh_exp,
        }[kind]
        count = 0
        batch: list[bytes] = []
        async for key in self.client.scan_iter(
            match=f"{_glob_escape(self._prefix)}{kind}:*", count=_SCAN_BATCH
        ):
            batch.append(key)
            if len(batch) >= _SCAN_BATCH:
                count += await self._count_batch(batch, exp_of, now)
                batch = []
        if batch:
            count += await self._count_batch(batch, exp_of, now)
        return count

    async def _count_batch(self, keys: list[bytes], exp_of: Any, now: int) -> int:
        values = cast(list[bytes | None], await self.client.mget(keys))
        return sum(1 for v in values if v is not None and exp_of(v) > now)


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a SCAN MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)

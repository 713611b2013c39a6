"""Token state in a Redis Cluster: the same records and scripts as ``redis_state.py``, with
keys laid out so that every script runs inside one hash slot.

A Lua script on a cluster may only touch keys of one slot, so everything one script
touches shares a hash tag:

* a grant's records, reuse markers and index set carry the grant's tag ``{g:<grant>}``:
  ``Pt:{g:G}<hash>``, ``Pr:{g:G}<hash>``, ``Pru:{g:G}<hash>``, ``Pg:{g:G}``. Taking a
  refresh token, detecting its reuse and revoking the family stay one atomic script;
* a code, its tombstone and its taker's copy carry the code's tag: ``Pc:{<hash>}``,
  ``Pcx:{<hash>}``, ``Pcr:{<hash>}``;
* claims ``Po:<key>``, counters ``Ph:<window>:<key>`` and subject sets ``Ps:<sub>`` are
  single keys, in their own slots.

A token presented by value is known only by its hash, so its grant's tag has to be found
first: ``Pt:<hash>`` / ``Pr:<hash>`` (no tag: anywhere in the cluster) hold a pointer,
``@<grant>``, which lives as long as the token. A token without a grant (client
credentials) has no family to be atomic with: its record itself lives at ``Pt:<hash>``.
Pointers never change, so each instance remembers the ones it wrote or read (a bounded
map of hash -> grant); with the pointer known, introspection is one ``GET``, as on a single
Redis. Only a grant token this instance has not seen costs a second ``GET``, once.

A subject set lists the subject's grants (``g:<grant>``), grant-less tokens
(``t:<hash>``) and pending codes (``c:<hash>``): ``revoke_subject`` revokes each grant with
the family script (one slot each, so a rotation racing it is stored revoked, as after a
reuse) and deletes each code, not in one step.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Final, cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from adapters.hybrid import scripts
from adapters.hybrid.codec import Codec
from adapters.hybrid.redis_errors import is_redis_failure
from adapters.hybrid.redis_state import REVOKED_GRANT_FLAG_MS, _glob_escape, _ttl
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

POINTER: Final = b"@"
DEFAULT_KNOWN_GRANTS: Final = 50_000
_SCAN_BATCH: Final = 1000


def grant_tag(grant_id: str) -> str:
    """The hash tag of every key of one grant."""
    return "{g:" + grant_id + "}"


class ClusterTokenState:
    """Implements ``SharedTokenState`` on a :class:`RedisCluster`; see the module docstring.

    ``known_grants`` bounds the map of token hash -> grant (oldest entries go first).
    """

    __slots__ = (
        "_claim_once",
        "_codec",
        "_grant_of",
        "_hit",
        "_known_grants",
        "_prefix",
        "_revoke_access",
        "_revoke_grant",
        "_save_grant",
        "_take_code",
        "_take_refresh",
        "client",
    )

    def __init__(
        self, client: RedisCluster, prefix: str, *, known_grants: int = DEFAULT_KNOWN_GRANTS
    ) -> None:
        if "{" in prefix or "}" in prefix:
            # A brace in the prefix would make it, not the grant, the keys' hash tag.
            raise ValueError("a key prefix for a Redis Cluster must not contain { or }")
        self.client = client
        self._prefix = prefix
        self._codec = Codec()
        self._grant_of: dict[str, str] = {}
        self._known_grants = known_grants
        self._take_code = _Script(client, scripts.TAKE_CODE)
        self._save_grant = _Script(client, scripts.SAVE_GRANT)
        self._revoke_access = _Script(client, scripts.REVOKE_ACCESS)
        self._take_refresh = _Script(client, scripts.TAKE_REFRESH)
        self._revoke_grant = _Script(client, scripts.REVOKE_GRANT)
        self._claim_once = _Script(client, scripts.CLAIM_ONCE)
        self._hit = _Script(client, scripts.HIT)

    async def ping(self) -> None:
        # Every master: a slot whose master is unreachable makes the store unusable.
        await self.client.ping(target_nodes=RedisCluster.PRIMARIES)

    async def close(self) -> None:
        await self.client.aclose()

    async def _get(self, key: str) -> bytes | None:
        """One ``GET``, on the hot read of every introspection and bearer request.

        Straight to the slot's master through its node, without the cluster client's
        per-command routing, policy and metrics layers (a fifth of a GET's CPU here: 96
        against 126 us). Anything unusual -- a MOVED reply after a failover, a dead
        connection, no slot map yet -- is handed to the full client, which follows the
        redirect or reloads the layout: a GET may safely be sent twice.
        """
        client = self.client
        try:
            node = client.nodes_manager.slots_cache[client.keyslot(key)][0]
        except (KeyError, IndexError):
            return cast(bytes | None, await client.get(key))
        try:
            return cast(bytes | None, await node.execute_command("GET", key))
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            return cast(bytes | None, await client.get(key))

    # Keys

    def _remember(self, token_hash: str, grant_id: str) -> None:
        known = self._grant_of
        if len(known) >= self._known_grants and token_hash not in known:
            del known[next(iter(known))]
        known[token_hash] = grant_id

    def _grant_set(self, grant_id: str) -> str:
        return f"{self._prefix}g:{grant_tag(grant_id)}"

    def _in_grant(self, kind: str, grant_id: str, token_hash: str) -> str:
        return f"{self._prefix}{kind}:{grant_tag(grant_id)}{token_hash}"

    async def _grant_of_token(self, kind: str, token_hash: str) -> tuple[str | None, bytes | None]:
        """``(grant, None)`` for a grant token, ``(None, record)`` for a grant-less access
        token, ``(None, None)`` when nothing is known under the hash."""
        grant = self._grant_of.get(token_hash)
        if grant is not None:
            return grant, None
        data = await self._get(f"{self._prefix}{kind}:{token_hash}")
        if data is None or data[:1] != POINTER:
            return None, data
        grant = data[1:].decode()
        self._remember(token_hash, grant)
        return grant, None

    # Codes

    async def save_code(self, code: AuthorizationCode, now: int) -> None:
        """One pipeline: the code and, for a user's code, its entry in the subject set (each
        key in its own slot). The code is handed out only after both, so ``revoke_subject``
        never misses it; an entry whose code never got written only costs a DEL."""
        p = self._prefix
        ttl = _ttl(code.exp, now)
        pipe = self.client.pipeline()
        if code.user_id is not None:
            _index(pipe, f"{p}s:{code.user_id}", f"c:{code.code_hash}", ttl)
        pipe.set(f"{p}c:{{{code.code_hash}}}", self._codec.encode_code(code), ex=ttl)
        await pipe.execute()

    async def take_code(
        self, code_hash: str, now: int, remember_until: int, taker: str
    ) -> AuthorizationCode | ConsumedCode | None:
        p = self._prefix
        reply: list[Any] = await self._take_code(
            keys=[f"{p}c:{{{code_hash}}}", f"{p}cx:{{{code_hash}}}", f"{p}cr:{{{code_hash}}}"],
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
        """Store the pair; False when its grant was revoked (then stored revoked).

        Two round trips: the pointers and subject entries (one pipeline, each key in its
        own slot), then the grant's script. A pointer written before its record reads as
        nothing; a token is handed out only once both steps are done.
        """
        p = self._prefix
        grant = access.grant_id
        access_ttl = _ttl(access.exp, now)
        access_value = self._codec.encode_access(access)
        pipe = self.client.pipeline()
        if grant is None:
            pipe.set(f"{p}t:{access.token_hash}", access_value, ex=access_ttl)
        else:
            pipe.set(f"{p}t:{access.token_hash}", POINTER + grant.encode(), ex=access_ttl)
            self._remember(access.token_hash, grant)
        if access.sub is not None:
            member = f"g:{grant}" if grant is not None else f"t:{access.token_hash}"
            _index(pipe, f"{p}s:{access.sub}", member, access_ttl)
        if refresh is not None:
            refresh_ttl = _ttl(refresh.exp, now)
            pipe.set(
                f"{p}r:{refresh.token_hash}", POINTER + refresh.grant_id.encode(), ex=refresh_ttl
            )
            self._remember(refresh.token_hash, refresh.grant_id)
            if refresh.sub is not None:
                _index(pipe, f"{p}s:{refresh.sub}", f"g:{refresh.grant_id}", refresh_ttl)
        await pipe.execute()

        if refresh is not None and refresh.grant_id == grant:
            return not await self._save_in_grant(grant, access, access_value, refresh, now)
        revoked = False
        if grant is not None:
            revoked = await self._save_in_grant(grant, access, access_value, None, now)
        if refresh is not None:
            refresh_revoked = await self._save_in_grant(
                refresh.grant_id, None, b"", refresh, now, revoked=revoked
            )
            if refresh_revoked and not revoked:
                # A pair split over two grants (never issued so; the port allows it):
                # the refresh token's revoked grant revokes its access token too.
                key = (f"{p}t:{access.token_hash}" if grant is None
                       else self._in_grant("t", grant, access.token_hash))
                await self._revoke_access(keys=[key], args=[now])
                revoked = True
        return not revoked

    async def _save_in_grant(
        self,
        grant: str,
        access: AccessToken | None,
        access_value: bytes,
        refresh: RefreshToken | None,
        now: int,
        *,
        revoked: bool = False,
    ) -> bool:
        """The grant's part of a save, in its slot; True when the grant is revoked."""
        keys = [self._grant_set(grant)]
        args: list[bytes | str | int] = [b"", 0, "", b"", 0, "", "1" if revoked else "0"]
        if access is not None:
            keys.append(self._in_grant("t", grant, access.token_hash))
            args[0:3] = [access_value, _ttl(access.exp, now), "t:" + access.token_hash]
        if refresh is not None:
            keys.append(self._in_grant("r", grant, refresh.token_hash))
            args[3:6] = [
                self._codec.encode_refresh(refresh),
                _ttl(refresh.exp, now),
                "r:" + refresh.token_hash,
            ]
        return bool(await self._save_grant(keys=keys, args=args) == 1)

    async def get_access_token(self, token_hash: str, now: int) -> AccessToken | None:
        """One ``GET`` when the token's grant is known here (or it has none), else two."""
        grant, data = await self._grant_of_token("t", token_hash)
        if grant is not None:
            data = await self._get(self._in_grant("t", grant, token_hash))
        if data is None:
            return None
        token = self._codec.decode_access(token_hash, data)
        return token if token.exp > now else None

    async def revoke_access_token(self, token_hash: str, now: int) -> bool:
        grant, data = await self._grant_of_token("t", token_hash)
        if grant is not None:
            key = self._in_grant("t", grant, token_hash)
        elif data is not None:
            key = f"{self._prefix}t:{token_hash}"
        else:
            return False
        return bool(await self._revoke_access(keys=[key], args=[now]))

    async def get_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        grant, _ = await self._grant_of_token("r", token_hash)
        if grant is None:
            return None
        data = await self._get(self._in_grant("r", grant, token_hash))
        if data is None:
            return None
        token = self._codec.decode_refresh(token_hash, data)
        return token if token.exp > now else None

    async def take_refresh_token(self, token_hash: str, now: int) -> RefreshTake:
        """The pointer, then the family script in the grant's slot, which re-checks the
        record itself (the pointer only says where to look)."""
        grant, _ = await self._grant_of_token("r", token_hash)
        if grant is None:
            return Unknown()
        reply: list[Any] = await self._take_refresh(
            keys=[self._in_grant("r", grant, token_hash), self._in_grant("ru", grant, token_hash)],
            args=[now, self._prefix, token_hash, REVOKED_GRANT_FLAG_MS, grant_tag(grant)],
        )
        if reply[0] == 1:
            return Taken(self._codec.decode_refresh(token_hash, reply[1]))
        if reply[0] == 2:
            return Reused(reply[1].decode())
        return Unknown()

    async def revoke_grant(self, grant_id: str, now: int) -> int:
        reply = await self._revoke_grant(
            keys=[self._grant_set(grant_id)],
            args=[now, self._prefix, REVOKED_GRANT_FLAG_MS, grant_tag(grant_id)],
        )
        return int(reply)

    async def revoke_subject(self, sub: str, now: int) -> int:
        """Each of the subject's grants with the family script, then its grant-less tokens,
        then its pending codes (deleted: a code taken meanwhile keeps its tombstone).

        The members handled are removed from the set afterwards (not the whole set): a
        grant added meanwhile stays listed for the next revocation.
        """
        subject = f"{self._prefix}s:{sub}"
        members = cast(set[bytes], await self.client.smembers(subject))
        changed = 0
        for member in members:
            kind, _, name = member.decode().partition(":")
            if kind == "g":
                changed += await self.revoke_grant(name, now)
            elif kind == "t":
                changed += int(
                    await self._revoke_access(keys=[f"{self._prefix}t:{name}"], args=[now])
                )
            elif kind == "c":
                changed += int(await self.client.delete(f"{self._prefix}c:{{{name}}}"))
        if members:
            await self.client.srem(subject, *members)
        return changed

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
        """Unexpired records of one kind (``c``, ``t`` or ``r``), pointers left out. A SCAN
        of every master: for metrics, not for requests."""
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
        values = cast(list[bytes | None], await self.client.mget_nonatomic(keys))
        return sum(
            1 for v in values if v is not None and v[:1] != POINTER and exp_of(v) > now
        )


class _Script:
    """A Lua script run with ``EVALSHA``, loaded on every node the client knows when one
    answers ``NOSCRIPT``.

    A promoted replica has no script cache, so the first ``EVALSHA`` after a failover
    meets ``NOSCRIPT``. redis-py's own ``register_script`` reloads the script on the
    masters its slot map names, and a load on "the slot's owner" would go where the map
    says: during a failover the map can still name the old master (another command's
    connection error leaves a reload pending), and the retried ``EVALSHA``, routed by a
    MOVED reply, meets ``NOSCRIPT`` again. Every node the client knows includes the one
    that answered (a MOVED reply adds the node it names); a second round covers a map
    reloaded from a node that had not heard of the promotion yet. Loads happen only after
    a ``NOSCRIPT``: nothing is added in steady state.
    """

    __slots__ = ("_client", "_sha", "_source")

    def __init__(self, client: RedisCluster, source: str) -> None:
        self._client = client
        self._source = source
        self._sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324  # Redis's name

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        for _ in range(_SCRIPT_LOADS):
            try:
                return await self._client.evalsha(self._sha, len(keys), *keys, *args)
            except NoScriptError:
                await self._load_everywhere()
        return await self._client.evalsha(self._sha, len(keys), *keys, *args)

    async def _load_everywhere(self) -> None:
        """``SCRIPT LOAD`` on every node the client knows, each on its own: a node that
        is down (a master that crashed) fails its own load only; the retried ``EVALSHA``
        decides."""
        loads = await asyncio.gather(
            *(node.execute_command("SCRIPT LOAD", self._source)
              for node in self._client.get_nodes()),
            return_exceptions=True,
        )
        for load in loads:
            if isinstance(load, BaseException) and not is_redis_failure(load):
                raise load


# Rounds of loads before an EVALSHA's NOSCRIPT is let through (as a failed Redis call).
_SCRIPT_LOADS: Final = 2


def _index(pipe: Any, key: str, member: str, ttl: int) -> None:
    """Add ``member`` to the set ``key`` and make the set live at least ``ttl`` seconds,
    never shorter than it did: ``NX`` sets a first TTL, ``GT`` only lengthens one."""
    pipe.sadd(key, member)
    pipe.pexpire(key, ttl * 1000, nx=True)
    pipe.pexpire(key, ttl * 1000, gt=True)

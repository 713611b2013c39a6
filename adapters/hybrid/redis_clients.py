"""Clients and initial access tokens in Redis (one server or a cluster): one round trip per
port call, one Lua script per step that reads and writes (``scripts.py``, "Clients").

Every key of the part carries the hash tag ``{cl}``, so on a Redis Cluster they all live in
one slot and every script runs there, atomically: a compare-and-set replace, a create that
must find the id free (and the ``resource_uri`` too: a pointer key per resource server,
kept by the scripts that write clients), a use of an initial access token. One slot is
enough: clients are configuration (thousands, not millions), read once per authentication.

Methods raise redis-py exceptions; :class:`~adapters.hybrid.clients.HybridClients` turns
them into ``StoreUnavailable``.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from adapters.hybrid import scripts
from adapters.hybrid.cluster_state import ClusterTokenState, _Script
from adapters.hybrid.redis_state import RedisTokenState, SharedTokenState
from domain.clients import Client, InitialAccessToken
from domain.errors import Conflict, NotFound, PreconditionFailed
from domain.records import Batch

#: The hash tag of every key of the part.
TAG: Final = "{cl}"


class _Run(Protocol):
    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any: ...


# Sets and dicts in a fixed order, so that one client always encodes to the same bytes (an
# import compares them to tell an identical client from a changed one).
_encode = msgspec.json.Encoder(order="deterministic").encode
_decode_client = msgspec.json.Decoder(Client).decode


def clients_of(state: SharedTokenState) -> RedisClients:
    """The client part on the Redis (or cluster) that ``state`` uses, under its prefix."""
    if isinstance(state, RedisTokenState | ClusterTokenState):
        return RedisClients(state.client, state._prefix)
    raise TypeError(f"no client part for {type(state).__name__}")


def _resource_taken(client: Client) -> Conflict:
    return Conflict(f"resource_uri {client.resource_uri!r} is held by another client",
                    "resource_uri")


def _after(cursor: str | None) -> str:
    """The ``ZRANGEBYLEX`` lower bound of the members after ``cursor``."""
    return "-" if cursor is None else "(" + cursor


class RedisClients:
    """The client part of the port on ``client`` (a :class:`Redis` or a
    :class:`RedisCluster`), under the key prefix ``prefix``; see the module docstring."""

    __slots__ = (
        "_client_head",
        "_create",
        "_delete",
        "_export_tokens",
        "_find_resource",
        "_ids",
        "_import_clients",
        "_import_tokens",
        "_list",
        "_purge_tokens",
        "_replace",
        "_resource_head",
        "_save_token",
        "_token_head",
        "_tokens",
        "_use_token",
        "client",
    )

    def __init__(self, client: Redis | RedisCluster, prefix: str) -> None:
        self.client = client
        self._client_head = f"{prefix}cl:{TAG}"
        self._ids = f"{prefix}cls:{TAG}"
        self._resource_head = f"{prefix}clr:{TAG}"
        self._token_head = f"{prefix}ia:{TAG}"
        self._tokens = f"{prefix}ias:{TAG}"

        def script(source: str) -> _Run:
            if isinstance(client, RedisCluster):
                # Reloaded on the node that owns the slot after a failover (cluster_state).
                return _Script(client, source)
            run: _Run = client.register_script(source)
            return run

        self._create = script(scripts.CREATE_CLIENT)
        self._replace = script(scripts.REPLACE_CLIENT)
        self._delete = script(scripts.DELETE_CLIENT)
        self._list = script(scripts.LIST_CLIENTS)
        self._find_resource = script(scripts.FIND_CLIENT_BY_RESOURCE)
        self._import_clients = script(scripts.IMPORT_CLIENTS)
        self._save_token = script(scripts.SAVE_INITIAL_TOKEN)
        self._use_token = script(scripts.USE_INITIAL_TOKEN)
        self._export_tokens = script(scripts.EXPORT_INITIAL_TOKENS)
        self._import_tokens = script(scripts.IMPORT_INITIAL_TOKENS)
        self._purge_tokens = script(scripts.PURGE_INITIAL_TOKENS)

    # Clients

    async def create_client(self, client: Client) -> Client:
        stored = msgspec.structs.replace(client, version=1)
        created = await self._create(
            keys=[self._client_head + client.client_id, self._ids],
            args=[client.client_id, _encode(stored), self._resource_head,
                  client.resource_uri or ""],
        )
        if created == 2:
            raise _resource_taken(client)
        if not created:
            raise Conflict(f"client {client.client_id!r} already exists", "client_id")
        return stored

    async def get_client(self, client_id: str) -> Client | None:
        data = await self.client.hget(self._client_head + client_id, "d")
        return None if data is None else _decode_client(data)

    async def find_client_by_resource(self, resource_uri: str) -> Client | None:
        if not resource_uri:
            return None  # '' stands for "no resource" in the client hashes
        data = await self._find_resource(keys=[self._resource_head + resource_uri],
                                         args=[self._client_head, resource_uri])
        return None if not data else _decode_client(data)

    async def list_clients(self, cursor: str | None, limit: int) -> Batch[Client]:
        reply: list[Any] = await self._list(
            keys=[self._ids], args=[self._client_head, _after(cursor), max(limit, 1)]
        )
        clients = tuple(_decode_client(data) for data in reply[1:])
        more = reply[0] == 1 and clients
        return Batch(clients, clients[-1].client_id if more else None)

    async def replace_client(self, client: Client, *, expected_version: int) -> Client:
        stored = msgspec.structs.replace(client, version=expected_version + 1)
        reply = await self._replace(
            keys=[self._client_head + client.client_id],
            args=[str(expected_version), str(stored.version), _encode(stored),
                  self._resource_head, client.resource_uri or "", client.client_id],
        )
        if reply == 2:
            raise _resource_taken(client)
        if reply == -1:
            raise NotFound(f"no client {client.client_id!r}")
        if reply == 0:
            raise PreconditionFailed(
                f"client {client.client_id!r} is not at version {expected_version}"
            )
        return stored

    async def delete_client(self, client_id: str) -> bool:
        reply = await self._delete(
            keys=[self._client_head + client_id, self._ids],
            args=[client_id, self._resource_head],
        )
        return bool(reply)

    async def count_clients(self) -> int:
        return int(await self.client.zcard(self._ids))

    async def import_clients(self, records: tuple[Client, ...]) -> int:
        if not records:
            return 0
        args: list[str | bytes | int] = [self._client_head, self._resource_head]
        for client in records:
            args += [client.client_id, str(client.version), _encode(client),
                     client.resource_uri or ""]
        # One script per call: the batch is written whole or not at all.
        changed = int(await self._import_clients(keys=[self._ids], args=args))
        if changed < 0:
            raise Conflict("a client's resource_uri is held by another client",
                           "resource_uri")
        return changed

    # Initial access tokens

    async def save_initial_access_token(self, token: InitialAccessToken, now: int) -> None:
        await self._save_token(
            keys=[self._token_head + token.digest, self._tokens],
            args=[now, token.digest, token.uses_left, token.created_at,
                  "" if token.expires_at is None else token.expires_at],
        )

    async def use_initial_access_token(self, digest: str, now: int) -> bool:
        reply = await self._use_token(
            keys=[self._token_head + digest, self._tokens], args=[now, digest]
        )
        return bool(reply)

    async def export_initial_access_tokens(
        self, cursor: str | None, limit: int, now: int
    ) -> Batch[InitialAccessToken]:
        reply: list[Any] = await self._export_tokens(
            keys=[self._tokens], args=[now, self._token_head, _after(cursor), max(limit, 1)]
        )
        tokens = tuple(
            InitialAccessToken(digest=digest.decode(), uses_left=int(uses),
                               created_at=int(created),
                               expires_at=int(expires) if expires else None)
            for digest, uses, created, expires in reply[1:]
        )
        return Batch(tokens, reply[0].decode() or None)

    async def import_initial_access_tokens(
        self, records: tuple[InitialAccessToken, ...], now: int
    ) -> int:
        live = [token for token in records if token.live(now)]
        if not live:
            return 0
        args: list[str | int] = [now, self._token_head]
        for token in live:
            args += [token.digest, token.uses_left, token.created_at,
                     "" if token.expires_at is None else token.expires_at]
        return int(await self._import_tokens(keys=[self._tokens], args=args))

    async def purge_initial_access_tokens(self, now: int, batch_size: int) -> int:
        """Remove the tokens that can no longer be used, a batch per script; how many
        records were deleted (index entries of keys Redis already expired are dropped
        but not counted: Redis removed those)."""
        deleted = 0
        lowest = "-"
        while True:
            reply: list[Any] = await self._purge_tokens(
                keys=[self._tokens], args=[now, self._token_head, lowest, max(batch_size, 1)]
            )
            deleted += int(reply[1])
            lowest = reply[0].decode()
            if not lowest:
                return deleted

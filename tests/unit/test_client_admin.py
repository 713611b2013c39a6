"""Managing stored clients (domain/client_admin.py) over the memory adapter: create, update,
rotate, delete; static clients refused; secrets kept only as digests (or sealed)."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from adapters.memory.clients import MemoryClients
from adapters.secret_sealing import AesGcmSecretSealer
from domain import clients as clients_module
from domain.client_admin import (
    ClientPorts,
    StaticClient,
    add_secret,
    client_view,
    create_client,
    delete_client,
    get_stored_client,
    new_client_id,
    update_client,
)
from domain.client_assertion import sealed_secret_context as sealing_context
from domain.client_directory import ClientDirectory
from domain.client_metadata import ClientDraft, MetadataSource, parse_client_metadata
from domain.clients import (
    AUTH_BASIC,
    AUTH_POST,
    AUTH_SECRET_JWT,
    Client,
    ClientRegistry,
    ClientSecret,
    hash_secret,
)
from domain.errors import Conflict, NotFound, PreconditionFailed
from ports.sealing import UnreadableSecret
from ports.security import SecretsTokenGenerator
from tests.doubles import T0, FakeClock, RecordingEvents

SECRET = "given-secret-0123456789abcdefghijklmnop"
STATIC_SECRET = "static-secret-0123456789abcdefghijklmno"
REDIRECT = "https://app.example/cb"


class Harness:
    def __init__(self) -> None:
        self.store = MemoryClients()
        self.clock = FakeClock(T0)
        self.events = RecordingEvents()
        self.sealer = AesGcmSecretSealer([b"k" * 32])
        static = ClientRegistry([Client(
            client_id="static-web", name="static", static=True,
            secrets=(ClientSecret.of(STATIC_SECRET),), scopes=frozenset({"read"}))])
        self.ports = ClientPorts(store=self.store, static=static, clock=self.clock,
                                 token_generator=SecretsTokenGenerator(), sealer=self.sealer,
                                 events=self.events)
        self.directory = ClientDirectory(static, self.store)

    def run(self, coroutine: Any) -> Any:
        return asyncio.run(coroutine)

    def authenticates(self, client_id: str, secret: str, method: str = AUTH_BASIC) -> bool:
        async def check() -> Client | None:
            result = self.directory.authenticate(client_id, secret, method, self.clock.now())
            if result is None or isinstance(result, Client):
                return result
            return await result

        return self.run(check()) is not None


@pytest.fixture
def h() -> Harness:
    return Harness()


def draft(**doc: Any) -> ClientDraft:
    base: dict[str, Any] = {"client_id": "web", "redirect_uris": [REDIRECT],
                            "scope": "openid read"}
    return parse_client_metadata({**base, **doc}, source=MetadataSource.ADMIN)


# Create


def test_create_generates_a_secret_shown_once_and_kept_as_a_digest(h: Harness) -> None:
    client, secret = h.run(create_client(h.ports, draft(), actor="admin-cli"))
    assert secret is not None and secret.startswith("cs_") and len(secret) > 40
    assert client.version == 1 and client.created_at == T0 == client.updated_at
    assert [s.digest for s in client.secrets] == [hash_secret(secret)]
    stored = h.run(h.store.get_client("web"))
    assert secret not in msgspec.json.encode(stored).decode()
    assert secret not in repr(client_view(stored))
    assert h.authenticates("web", secret)
    assert h.events.named("client_created") == [{
        "client_id": "web", "actor": "admin-cli", "registered": False,
        "auth_method": AUTH_BASIC, "scope": "openid read"}]
    assert secret not in repr(h.events.events)


def test_create_keeps_a_given_secret(h: Harness) -> None:
    _, secret = h.run(create_client(h.ports, draft(client_secret=SECRET)))
    assert secret == SECRET
    assert h.authenticates("web", SECRET)


def test_a_public_client_gets_no_secret(h: Harness) -> None:
    client, secret = h.run(create_client(h.ports, draft(token_endpoint_auth_method="none")))
    assert secret is None and client.secrets == ()


def test_a_client_secret_jwt_secret_is_sealed_for_its_client(h: Harness) -> None:
    client, secret = h.run(create_client(h.ports, draft(
        token_endpoint_auth_method=AUTH_SECRET_JWT)))
    (held,) = client.secrets
    assert held.sealed is not None and secret not in held.sealed
    assert h.sealer.open(held.sealed, sealing_context("web")).plaintext == secret
    with pytest.raises(UnreadableSecret):  # sealed for "web": does not open as another client's
        h.sealer.open(held.sealed, sealing_context("other"))


def test_create_refuses_a_duplicate_id_and_a_static_id(h: Harness) -> None:
    h.run(create_client(h.ports, draft()))
    with pytest.raises(Conflict):
        h.run(create_client(h.ports, draft()))
    with pytest.raises(Conflict, match="static"):
        h.run(create_client(h.ports, draft(client_id="static-web")))
    assert h.events.names() == ["client_created"]


def test_new_client_ids_are_unique_and_prefixed(h: Harness) -> None:
    ids = {new_client_id(h.ports) for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("cl_") and len(i) == 27 for i in ids)


# Static clients are read-only here


def test_static_clients_cannot_be_changed(h: Harness) -> None:
    with pytest.raises(StaticClient, match="CLIENTS_FILE or CLIENT_CREDENTIALS"):
        h.run(get_stored_client(h.ports, "static-web"))
    with pytest.raises(StaticClient):
        h.run(update_client(h.ports, draft(client_id="static-web")))
    with pytest.raises(StaticClient):
        h.run(add_secret(h.ports, "static-web"))
    with pytest.raises(StaticClient):
        h.run(delete_client(h.ports, "static-web"))
    assert h.events.events == []


# Update


def test_update_replaces_metadata_and_keeps_secrets(h: Harness) -> None:
    _, secret = h.run(create_client(h.ports, draft()))
    h.clock.advance(10)
    updated, new_secret = h.run(update_client(
        h.ports, draft(client_name="Renamed", scope="openid"), actor="ops"))
    assert new_secret is None
    assert updated.name == "Renamed" and updated.scopes == {"openid"}
    assert updated.version == 2 and updated.created_at == T0 and updated.updated_at == T0 + 10
    assert h.authenticates("web", secret)
    assert h.events.named("client_updated") == [{
        "client_id": "web", "actor": "ops", "version": 2, "secret_added": False,
        "scope": "openid"}]


def test_update_is_compare_and_set_on_the_version(h: Harness) -> None:
    h.run(create_client(h.ports, draft()))
    h.run(update_client(h.ports, draft(client_name="one"), expected_version=1))
    with pytest.raises(PreconditionFailed):
        h.run(update_client(h.ports, draft(client_name="two"), expected_version=1))
    assert h.run(h.store.get_client("web")).name == "one"


def test_update_with_a_secret_adds_it(h: Harness) -> None:
    _, first = h.run(create_client(h.ports, draft()))
    _, added = h.run(update_client(h.ports, draft(client_secret=SECRET)))
    assert added == SECRET
    assert h.authenticates("web", first) and h.authenticates("web", SECRET)


def test_update_to_a_public_client_drops_the_secrets(h: Harness) -> None:
    _, secret = h.run(create_client(h.ports, draft()))
    updated, _ = h.run(update_client(h.ports, draft(token_endpoint_auth_method="none")))
    assert updated.secrets == () and not h.authenticates("web", secret)


def test_update_to_client_secret_jwt_replaces_unsealed_secrets(h: Harness) -> None:
    _, secret = h.run(create_client(h.ports, draft()))
    updated, new_secret = h.run(update_client(
        h.ports, draft(token_endpoint_auth_method=AUTH_SECRET_JWT)))
    assert new_secret is not None and new_secret != secret
    assert [s.sealed is not None for s in updated.secrets] == [True]


def test_update_of_an_unknown_client_is_not_found(h: Harness) -> None:
    with pytest.raises(NotFound):
        h.run(update_client(h.ports, draft(client_id="ghost")))


# Rotation


def test_rotation_keeps_the_old_secret_valid_until_its_expiry(h: Harness) -> None:
    _, old = h.run(create_client(h.ports, draft()))
    client, new = h.run(add_secret(h.ports, "web", retire_others_at=T0 + 3600, actor="ops"))
    assert new != old and len(client.secrets) == 2
    assert [s.expires_at for s in client.secrets] == [T0 + 3600, None]
    assert h.authenticates("web", old) and h.authenticates("web", new)
    h.clock.advance(3600)
    assert not h.authenticates("web", old)
    assert h.authenticates("web", new)
    (event,) = h.events.named("client_secret_added")
    assert event["client_id"] == "web" and event["actor"] == "ops" and event["secrets"] == 2
    assert event["secret_id"] == client.secrets[1].id
    assert new not in repr(h.events.events)


def test_rotation_without_retirement_keeps_every_secret(h: Harness) -> None:
    _, old = h.run(create_client(h.ports, draft()))
    _, new = h.run(add_secret(h.ports, "web"))
    h.clock.advance(10**8)
    assert h.authenticates("web", old) and h.authenticates("web", new)


def test_a_new_secret_with_an_expiry_stops_working_then(h: Harness) -> None:
    h.run(create_client(h.ports, draft()))
    _, temporary = h.run(add_secret(h.ports, "web", expires_at=T0 + 60))
    assert h.authenticates("web", temporary)
    h.clock.advance(60)
    assert not h.authenticates("web", temporary)


def test_retirement_never_extends_an_expiry_and_drops_expired_secrets(h: Harness) -> None:
    h.run(create_client(h.ports, draft()))
    h.run(add_secret(h.ports, "web", expires_at=T0 + 100, retire_others_at=T0 + 50))
    h.run(add_secret(h.ports, "web", retire_others_at=T0 + 10_000))
    client = h.run(h.store.get_client("web"))
    # The first secret had been retired at +50; +10000 does not give it more time.
    assert [s.expires_at for s in client.secrets] == [T0 + 50, T0 + 100, None]
    h.clock.advance(200)
    client, _ = h.run(add_secret(h.ports, "web"))
    assert [s.expires_at for s in client.secrets] == [None, None]


def test_retiring_now_revokes_the_old_secrets_at_once(h: Harness) -> None:
    _, old = h.run(create_client(h.ports, draft()))
    _, new = h.run(add_secret(h.ports, "web", retire_others_at=T0))
    assert not h.authenticates("web", old) and h.authenticates("web", new)


def test_a_rotated_client_secret_jwt_secret_is_sealed(h: Harness) -> None:
    h.run(create_client(h.ports, draft(token_endpoint_auth_method=AUTH_SECRET_JWT)))
    client, new = h.run(add_secret(h.ports, "web"))
    assert h.sealer.open(client.secrets[-1].sealed or "", sealing_context("web")).plaintext == new


def test_rotation_refuses_a_client_without_secrets(h: Harness) -> None:
    h.run(create_client(h.ports, draft(token_endpoint_auth_method="none")))
    with pytest.raises(Conflict, match="uses no secret"):
        h.run(add_secret(h.ports, "web"))
    with pytest.raises(NotFound):
        h.run(add_secret(h.ports, "ghost"))


class RacingClients(MemoryClients):
    """Another writer changes the client between the first read and write of a rotation."""

    raced = False

    async def replace_client(self, client: Client, *, expected_version: int) -> Client:
        if not self.raced:
            self.raced = True
            held = await self.get_client(client.client_id)
            assert held is not None
            await super().replace_client(msgspec.structs.replace(held, name="changed"),
                                         expected_version=held.version)
        return await super().replace_client(client, expected_version=expected_version)


def test_a_rotation_racing_another_change_is_applied_to_it(h: Harness) -> None:
    store = RacingClients()
    ports = dataclasses.replace(h.ports, store=store)
    h.run(create_client(ports, draft()))
    client, _ = h.run(add_secret(ports, "web"))
    assert store.raced
    assert client.name == "changed" and len(client.secrets) == 2 and client.version == 3


# Delete


def test_delete_removes_the_client_and_its_secrets_stop_working(h: Harness) -> None:
    _, secret = h.run(create_client(h.ports, draft()))
    h.run(delete_client(h.ports, "web", actor="ops"))
    assert h.run(h.store.get_client("web")) is None
    assert not h.authenticates("web", secret)
    assert h.events.named("client_deleted") == [{"client_id": "web", "actor": "ops"}]
    with pytest.raises(NotFound):
        h.run(delete_client(h.ports, "web"))


# Constant-time comparison across several secrets


@pytest.mark.parametrize("which", ["first", "last", "none", "expired"])
def test_every_held_secret_is_compared_whatever_matches(
    which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = T0
    secrets_ = [f"secret-{i}-" + "x" * 32 for i in range(4)]
    held = tuple(ClientSecret.of(s, expires_at=(now - 1 if i == 3 else None))
                 for i, s in enumerate(secrets_))
    client = Client(client_id="c", name="c", secrets=held, auth_methods=frozenset({AUTH_POST}))
    presented = {"first": secrets_[0], "last": secrets_[2], "none": "wrong-" + "y" * 32,
                 "expired": secrets_[3]}[which]
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(clients_module, "hmac", SimpleNamespace(compare_digest=counting))
    matched = client.secret_matches(presented, now)
    assert matched is (which in ("first", "last"))
    # One comparison per held secret, expired ones included: timing says nothing about
    # which one matched, or whether it had expired.
    assert [b for _, b in calls] == [s.digest for s in held]

"""The ``groups`` claim (scope ``groups``): the user's group display names in the ID token
and at userinfo, on each backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet
from litestar import Litestar
from litestar.testing import TestClient

from domain.entities import Group, Member
from domain.filters import ListQuery
from tests.e2e.conftest import StoreBackend
from tests.e2e.oauth_setup import (
    CLIENTS_TOML,
    USER_ID,
    build_app,
    ensure_user,
    exchange,
    running,
    services_of,
)

# The e2e clients, with the ``groups`` scope added to what they may ask for.
GROUPS_CLIENTS = CLIENTS_TOML.replace('"read", "write"]', '"read", "write", "groups"]')


def _app(store: StoreBackend, tmp_path: Path) -> Litestar:
    clients = tmp_path / "groups-clients.toml"
    clients.write_text(GROUPS_CLIENTS)
    return build_app(store, tmp_path, CLIENTS_FILE=str(clients))


def _join(client: TestClient[Any], app: Litestar, *names: str) -> None:
    async def make() -> None:
        await ensure_user(app)
        store = services_of(app).store
        for name in names:
            await store.create_group(Group(display_name=name, members=(Member(value=USER_ID),)))
        await store.create_group(Group(display_name="Not Mine"))

    client.blocking_portal.call(make)


def _id_claims(client: TestClient[Any], id_token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(client.get("/jwks.json").json())
    claims: dict[str, Any] = jwt.decode(id_token, keys, algorithms=["RS256"]).claims
    return claims


def _userinfo(client: TestClient[Any], access_token: str) -> dict[str, Any]:
    response = client.get("/oauth/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_groups_scope_puts_group_names_in_id_token_and_userinfo(
    store: StoreBackend, tmp_path: Path,
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        _join(client, app, "Sales", "Engineering")
        tokens = exchange(client, app, scope="openid groups")
        assert _id_claims(client, tokens["id_token"])["groups"] == ["Engineering", "Sales"]
        assert _userinfo(client, tokens["access_token"])["groups"] == ["Engineering", "Sales"]


def test_without_the_groups_scope_there_is_no_groups_claim(
    store: StoreBackend, tmp_path: Path,
) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        _join(client, app, "Sales")
        tokens = exchange(client, app, scope="openid profile")
        assert "groups" not in _id_claims(client, tokens["id_token"])
        assert "groups" not in _userinfo(client, tokens["access_token"])


def test_a_user_in_no_group_gets_an_empty_list(store: StoreBackend, tmp_path: Path) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        _join(client, app)
        tokens = exchange(client, app, scope="openid groups")
        assert _id_claims(client, tokens["id_token"])["groups"] == []
        assert _userinfo(client, tokens["access_token"])["groups"] == []


def test_userinfo_follows_membership_changes(store: StoreBackend, tmp_path: Path) -> None:
    """The ID token is a snapshot at issue; userinfo answers from the store now."""
    app = _app(store, tmp_path)
    with running(app) as client:
        _join(client, app, "Sales")
        tokens = exchange(client, app, scope="openid groups")

        async def leave() -> None:
            store_ = services_of(app).store
            page = await store_.list_groups(ListQuery())
            for group in page.items:
                await store_.delete_group(group.id)

        client.blocking_portal.call(leave)
        assert _userinfo(client, tokens["access_token"])["groups"] == []


def test_discovery_lists_the_groups_claim(store: StoreBackend, tmp_path: Path) -> None:
    app = _app(store, tmp_path)
    with running(app) as client:
        metadata = client.get("/.well-known/openid-configuration").json()
        assert "groups" in metadata["claims_supported"]
        assert "groups" in metadata["scopes_supported"]

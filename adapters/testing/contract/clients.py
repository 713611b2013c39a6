"""The client part of the Store contract: clients managed at run time and the initial
access tokens of dynamic registration (the ``ClientStore`` port)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from adapters.testing.contract.fixtures import CONCURRENCY, StoreFixtures
from domain.clients import (
    AUTH_PRIVATE_KEY_JWT,
    AUTH_SECRET_JWT,
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
    Client,
    ClientSecret,
    InitialAccessToken,
    hash_secret,
)
from domain.errors import Conflict, InvalidValue, NotFound, PreconditionFailed
from domain.records import Batch
from ports.store import Store

CLEAR_SECRET = "s3cr3t-" + "k" * 40
T0 = 1_600_000_000
ORDERS = "https://orders.example/api"
REPORTS = "https://reports.example"
SHIPPING = "urn:example:shipping"


def _client(client_id: str, **changes: object) -> Client:
    """A client with every kind of field set: sets, tuples, a JWK Set, optional values."""
    client = Client(
        client_id=client_id,
        name=f"App {client_id}",
        secrets=(ClientSecret.of(CLEAR_SECRET, created_at=T0, expires_at=T0 + 86400 * 365),
                 ClientSecret.of("old-" + "o" * 40, created_at=T0 - 60)),
        redirect_uris=("https://app.example/cb", "http://127.0.0.1/cb"),
        post_logout_redirect_uris=("https://app.example/bye",),
        grant_types=frozenset({GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN}),
        scopes=frozenset({"openid", "profile", "email", "offline_access"}),
        auth_methods=frozenset({AUTH_PRIVATE_KEY_JWT}),
        jwks={"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
                        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]},
        backchannel_logout_uri="https://app.example/logout",
        backchannel_logout_session_required=True,
        access_token_lifetime=600,
        refresh_token_lifetime=86400,
        require_mfa=True,
        first_party=True,
        allowed_cors_origins=("https://app.example",),
        registered=True,
        registration_token_digest=hash_secret("rat_" + "r" * 40),
        created_at=T0,
        updated_at=T0 + 5,
    )
    return msgspec.structs.replace(client, **changes)


def _token(name: str, uses: int, now: int, *, ttl: int | None = 3600) -> InitialAccessToken:
    return InitialAccessToken(digest=hash_secret(name), uses_left=uses, created_at=now - 10,
                              expires_at=None if ttl is None else now + ttl)


class ClientContract(StoreFixtures):
    """``create_client`` / ``get_client`` / ``list_clients`` / ``replace_client`` /
    ``delete_client`` and the initial access tokens, as :mod:`ports.store` states them.

    The tests named "across instances" use the ``other_instance`` fixture (by default the
    store itself; see :class:`~adapters.testing.contract.fixtures.StoreFixtures`). The
    counting and purging tests need ``StoreAdmin`` too.
    """

    # Create and get

    async def test_a_created_client_reads_back_whole_at_version_1(
        self, store: Store
    ) -> None:
        client = _client("web", version=7)
        created = await store.create_client(client)
        assert created == msgspec.structs.replace(client, version=1)
        assert await store.get_client("web") == created

    async def test_a_client_that_was_never_created_is_none(self, store: Store) -> None:
        assert await store.get_client("nobody") is None
        await store.create_client(_client("web"))
        # Ids are compared exactly: no case folding, no trimming.
        assert await store.get_client("WEB") is None
        assert await store.get_client("web ") is None

    async def test_a_second_client_with_the_same_id_is_a_conflict(self, store: Store) -> None:
        first = await store.create_client(_client("web"))
        with pytest.raises(Conflict) as raised:
            await store.create_client(_client("web", name="Impostor"))
        assert raised.value.attribute == "client_id"
        assert await store.get_client("web") == first
        # Another case is another id.
        assert (await store.create_client(_client("Web"))).client_id == "Web"

    async def test_concurrent_creates_of_one_id_have_exactly_one_winner(
        self, store: Store, other_instance: Store
    ) -> None:
        self._require_concurrency()
        candidates = [_client("race", name=f"candidate {n}") for n in range(CONCURRENCY)]
        results = await asyncio.gather(
            *((store if n % 2 else other_instance).create_client(c)
              for n, c in enumerate(candidates)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, Client)]
        assert len(winners) == 1
        assert all(isinstance(r, Conflict) and r.attribute == "client_id"
                   for r in results if not isinstance(r, Client))
        assert await store.get_client("race") == winners[0]

    async def test_a_stored_client_holds_its_secrets_only_as_digests(
        self, store: Store, now: int
    ) -> None:
        await store.create_client(_client("web"))
        stored = await store.get_client("web")
        assert stored is not None
        assert [s.digest for s in stored.secrets] == \
            [hash_secret(CLEAR_SECRET), hash_secret("old-" + "o" * 40)]
        assert CLEAR_SECRET.encode() not in msgspec.json.encode(stored)
        # The digests still prove the secret after the round trip, expiry included.
        assert stored.secret_matches(CLEAR_SECRET, T0 + 10)
        assert not stored.secret_matches(CLEAR_SECRET, T0 + 86400 * 365)
        [listed] = (await store.list_clients(None, 10)).records
        assert CLEAR_SECRET.encode() not in msgspec.json.encode(listed)

    async def test_a_sealed_secret_is_kept_as_the_opaque_string_it_is(
        self, store: Store
    ) -> None:
        secret = ClientSecret.of(CLEAR_SECRET, created_at=T0, sealed="v1.sealed.b3BhcXVl")
        client = _client("jwt", secrets=(secret,), auth_methods=frozenset({AUTH_SECRET_JWT}))
        await store.create_client(client)
        stored = await store.get_client("jwt")
        assert stored is not None and stored.secrets == (secret,)

    async def test_a_nul_in_a_field_is_stored_exactly_or_refused_as_invalid_value(
        self, store: Store
    ) -> None:
        """Never ``StoreUnavailable``: the input is wrong, not the store (PostgreSQL holds
        no NUL in text or JSON and refuses with ``InvalidValue``; memory and Redis keep it).
        Use cases refuse such input before it reaches a store; this is the backstop."""
        accepted: list[str] = []
        for client_id, client in (("nul-name", _client("nul-name", name="bad\x00name")),
                                  ("nul\x00id", _client("nul\x00id")),
                                  ("nul-uri", _client("nul-uri",
                                                      redirect_uris=("https://a/\x00",)))):
            try:
                created = await store.create_client(client)
            except InvalidValue:
                # Refused whole: a lookup finds nothing (and does not fail either).
                assert await store.get_client(client_id) is None
                continue
            accepted.append(client_id)
            assert await store.get_client(client_id) == created
        assert [c.client_id for c in (await store.list_clients(None, 10)).records] == \
            sorted(accepted)
        fine = await store.create_client(_client("fine"))
        try:
            await store.replace_client(_client("fine", name="x\x00"), expected_version=1)
        except InvalidValue:
            assert await store.get_client("fine") == fine

    # Listing

    async def test_list_of_an_empty_store_is_one_empty_last_page(self, store: Store) -> None:
        assert await store.list_clients(None, 10) == Batch(records=(), cursor=None)

    @pytest.mark.parametrize("count", [1, 4, 5])
    async def test_list_pages_by_client_id_each_client_once(
        self, store: Store, count: int
    ) -> None:
        ids = [f"app-{n:02}" for n in range(count)]
        for client_id in reversed(ids):
            await store.create_client(_client(client_id))
        pages: list[Batch[Client]] = []
        cursor: str | None = None
        while True:
            page = await store.list_clients(cursor, 2)
            pages.append(page)
            if page.cursor is None:
                break
            cursor = page.cursor
        assert [c.client_id for page in pages for c in page.records] == ids
        assert all(len(page.records) <= 2 for page in pages)
        assert len(pages) == (count + 1) // 2
        assert all(c.version == 1 for page in pages for c in page.records)

    async def test_list_leaves_out_deleted_clients_and_shows_replaced_ones(
        self, store: Store
    ) -> None:
        for client_id in ("a", "b", "c"):
            await store.create_client(_client(client_id))
        await store.delete_client("b")
        renamed = await store.replace_client(_client("c", name="Renamed"), expected_version=1)
        page = await store.list_clients(None, 10)
        assert [c.client_id for c in page.records] == ["a", "c"]
        assert page.records[1] == renamed and page.cursor is None

    # Replace

    async def test_replace_at_the_stored_version_writes_the_next_version(
        self, store: Store
    ) -> None:
        await store.create_client(_client("web"))
        changed = _client("web", name="Renamed", redirect_uris=("https://new.example/cb",),
                          scopes=frozenset({"openid"}), jwks=None, version=99)
        replaced = await store.replace_client(changed, expected_version=1)
        assert replaced == msgspec.structs.replace(changed, version=2)
        assert await store.get_client("web") == replaced
        again = await store.replace_client(_client("web", name="Third"), expected_version=2)
        assert again.version == 3 and (await store.get_client("web")) == again

    async def test_replace_at_another_version_is_refused_and_changes_nothing(
        self, store: Store
    ) -> None:
        created = await store.create_client(_client("web"))
        for stale in (0, 2, 5):
            with pytest.raises(PreconditionFailed):
                await store.replace_client(_client("web", name="Lost"), expected_version=stale)
        assert await store.get_client("web") == created

    async def test_replace_of_an_unknown_client_is_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.replace_client(_client("ghost"), expected_version=1)
        assert await store.get_client("ghost") is None

    async def test_concurrent_replaces_at_one_version_have_exactly_one_winner(
        self, store: Store
    ) -> None:
        self._require_concurrency()
        await store.create_client(_client("web"))
        results = await asyncio.gather(
            *(store.replace_client(_client("web", name=f"writer {n}"), expected_version=1)
              for n in range(CONCURRENCY)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, Client)]
        assert len(winners) == 1 and winners[0].version == 2
        assert all(isinstance(r, PreconditionFailed) for r in results if r is not winners[0])
        assert await store.get_client("web") == winners[0]

    async def test_two_writers_on_two_instances_at_one_version_have_exactly_one_winner(
        self, store: Store, other_instance: Store
    ) -> None:
        self._require_concurrency()
        await store.create_client(_client("web"))
        for round_ in range(5):
            version = round_ + 1
            results = await asyncio.gather(
                store.replace_client(_client("web", name=f"first {round_}"),
                                     expected_version=version),
                other_instance.replace_client(_client("web", name=f"second {round_}"),
                                              expected_version=version),
                return_exceptions=True,
            )
            winners = [r for r in results if isinstance(r, Client)]
            assert len(winners) == 1, results
            assert [type(r) for r in results if not isinstance(r, Client)] == \
                [PreconditionFailed]
            assert await other_instance.get_client("web") == winners[0]
            assert await store.get_client("web") == winners[0]

    # Delete

    async def test_delete_removes_the_client_once(self, store: Store) -> None:
        await store.create_client(_client("web"))
        assert await store.delete_client("web") is True
        assert await store.get_client("web") is None
        assert await store.delete_client("web") is False
        assert await store.delete_client("never") is False
        with pytest.raises(NotFound):
            await store.replace_client(_client("web"), expected_version=1)
        # The id is free again, and starts over at version 1.
        assert (await store.create_client(_client("web"))).version == 1

    async def test_a_change_on_one_instance_is_seen_by_another_at_once(
        self, store: Store, other_instance: Store
    ) -> None:
        created = await store.create_client(_client("web"))
        assert await other_instance.get_client("web") == created
        replaced = await other_instance.replace_client(_client("web", name="New"),
                                                       expected_version=1)
        assert await store.get_client("web") == replaced
        assert await store.delete_client("web") is True
        assert await other_instance.get_client("web") is None

    # Resource servers (find_client_by_resource)

    async def test_a_resource_server_is_found_by_its_exact_resource_uri(
        self, store: Store, other_instance: Store
    ) -> None:
        created = await store.create_client(_client("api", resource_uri=ORDERS,
                                                    resource_scopes=frozenset({"orders"})))
        await store.create_client(_client("web"))
        assert await store.find_client_by_resource(ORDERS) == created
        assert await other_instance.find_client_by_resource(ORDERS) == created
        # Compared exactly: no case folding, no trailing slash, no prefix.
        for near in (ORDERS.upper(), ORDERS + "/", ORDERS[:-1], "", "api"):
            assert await store.find_client_by_resource(near) is None
        # A lookup of a value no backend could hold is simply not found.
        assert await store.find_client_by_resource("https://a\x00b") is None

    async def test_a_second_client_with_the_same_resource_uri_is_a_conflict(
        self, store: Store
    ) -> None:
        first = await store.create_client(_client("api", resource_uri=ORDERS))
        with pytest.raises(Conflict) as raised:
            await store.create_client(_client("twin", resource_uri=ORDERS))
        assert raised.value.attribute == "resource_uri"
        assert await store.get_client("twin") is None
        other = await store.create_client(_client("other", resource_uri=REPORTS))
        with pytest.raises(Conflict) as replaced:
            await store.replace_client(_client("other", resource_uri=ORDERS),
                                       expected_version=1)
        assert replaced.value.attribute == "resource_uri"
        assert await store.get_client("other") == other
        assert await store.find_client_by_resource(ORDERS) == first
        # Replacing a client with its own resource_uri is no clash.
        assert (await store.replace_client(_client("api", name="Again", resource_uri=ORDERS),
                                           expected_version=1)).version == 2

    async def test_concurrent_creates_of_one_resource_uri_have_exactly_one_winner(
        self, store: Store, other_instance: Store
    ) -> None:
        self._require_concurrency()
        candidates = [_client(f"api-{n}", resource_uri=ORDERS) for n in range(CONCURRENCY)]
        results = await asyncio.gather(
            *((store if n % 2 else other_instance).create_client(c)
              for n, c in enumerate(candidates)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, Client)]
        assert len(winners) == 1
        assert all(isinstance(r, Conflict) and r.attribute == "resource_uri"
                   for r in results if not isinstance(r, Client))
        assert await store.find_client_by_resource(ORDERS) == winners[0]
        assert [c.client_id for c in (await store.list_clients(None, 100)).records] == \
            [winners[0].client_id]

    async def test_replace_changing_or_removing_the_resource_uri_frees_the_old_one(
        self, store: Store, other_instance: Store
    ) -> None:
        await store.create_client(_client("api", resource_uri=ORDERS))
        moved = await store.replace_client(_client("api", resource_uri=REPORTS),
                                           expected_version=1)
        assert await other_instance.find_client_by_resource(ORDERS) is None
        assert await other_instance.find_client_by_resource(REPORTS) == moved
        taken = await other_instance.create_client(_client("new", resource_uri=ORDERS))
        assert await store.find_client_by_resource(ORDERS) == taken
        await store.replace_client(_client("api"), expected_version=2)
        assert await store.find_client_by_resource(REPORTS) is None
        assert (await store.create_client(_client("late", resource_uri=REPORTS))).version == 1
        # A refused replace (stale version) leaves the index as it was.
        with pytest.raises(PreconditionFailed):
            await store.replace_client(_client("late", resource_uri=SHIPPING),
                                       expected_version=7)
        assert await store.find_client_by_resource(SHIPPING) is None
        assert (await store.find_client_by_resource(REPORTS) or _client("x")).client_id == "late"

    async def test_delete_frees_the_resource_uri(
        self, store: Store, other_instance: Store
    ) -> None:
        await store.create_client(_client("api", resource_uri=ORDERS))
        assert await other_instance.delete_client("api") is True
        assert await store.find_client_by_resource(ORDERS) is None
        again = await store.create_client(_client("api-2", resource_uri=ORDERS))
        assert await other_instance.find_client_by_resource(ORDERS) == again

    async def test_import_keeps_the_resource_index_right(
        self, store: Store, now: int
    ) -> None:
        await store.create_client(_client("api", resource_uri=ORDERS))
        await store.create_client(_client("web"))
        source = (_client("api", version=3, resource_uri=REPORTS),
                  _client("ship", version=1, resource_uri=SHIPPING))
        assert await store.import_clients(source, now) == 2
        assert await store.find_client_by_resource(ORDERS) is None
        assert await store.find_client_by_resource(REPORTS) == source[0]
        assert await store.find_client_by_resource(SHIPPING) == source[1]
        # A record whose resource_uri another client of the target holds: the batch is
        # written whole or not at all.
        with pytest.raises(Conflict) as raised:
            await store.import_clients(
                (_client("new", version=1, resource_uri=ORDERS),
                 _client("web", version=2, resource_uri=REPORTS)), now)
        assert raised.value.attribute == "resource_uri"
        assert await store.get_client("new") is None
        assert (await store.get_client("web") or _client("x")).version == 1
        assert await store.find_client_by_resource(ORDERS) is None
        assert await store.find_client_by_resource(REPORTS) == source[0]

    # Initial access tokens

    async def test_an_initial_access_token_is_spent_one_use_at_a_time(
        self, store: Store, now: int
    ) -> None:
        token = _token("iat_three", 3, now)
        await store.save_initial_access_token(token, now)
        assert [await store.use_initial_access_token(token.digest, now) for _ in range(4)] == \
            [True, True, True, False]
        assert await store.use_initial_access_token(hash_secret("iat_unknown"), now) is False

    async def test_an_initial_access_token_is_dead_from_its_expiry(
        self, store: Store, now: int
    ) -> None:
        token = _token("iat_short", 5, now, ttl=60)
        await store.save_initial_access_token(token, now)
        assert await store.use_initial_access_token(token.digest, now + 59) is True
        assert await store.use_initial_access_token(token.digest, now + 60) is False
        forever = _token("iat_forever", 1, now, ttl=None)
        await store.save_initial_access_token(forever, now)
        assert await store.use_initial_access_token(forever.digest, now + 10**8) is True
        assert await store.use_initial_access_token(forever.digest, now + 10**8) is False

    async def test_saving_an_initial_access_token_again_replaces_it(
        self, store: Store, now: int
    ) -> None:
        await store.save_initial_access_token(_token("iat_x", 1, now), now)
        await store.save_initial_access_token(_token("iat_x", 2, now, ttl=None), now)
        digest = hash_secret("iat_x")
        assert [await store.use_initial_access_token(digest, now + 7200) for _ in range(3)] == \
            [True, True, False]
        await store.save_initial_access_token(_token("iat_x", 0, now), now)
        assert await store.use_initial_access_token(digest, now) is False

    async def test_concurrent_uses_never_spend_more_than_the_token_had(
        self, store: Store, other_instance: Store, now: int
    ) -> None:
        self._require_concurrency()
        token = _token("iat_race", 5, now)
        await store.save_initial_access_token(token, now)
        results = await asyncio.gather(
            *((store if n % 2 else other_instance).use_initial_access_token(token.digest, now)
              for n in range(CONCURRENCY))
        )
        assert results.count(True) == 5
        assert await store.use_initial_access_token(token.digest, now) is False

    # Counts and purge (StoreAdmin)

    async def test_counts_include_every_stored_client(self, store: Store, now: int) -> None:
        assert (await store.counts(now)).clients == 0
        for client_id in ("a", "b", "c"):
            await store.create_client(_client(client_id))
        await store.delete_client("b")
        await store.replace_client(_client("c", name="Renamed"), expected_version=1)
        assert (await store.counts(now)).clients == 2

    async def test_purge_drops_dead_initial_access_tokens_and_keeps_live_ones(
        self, store: Store, now: int
    ) -> None:
        await store.save_initial_access_token(_token("iat_short", 3, now, ttl=60), now)
        await store.save_initial_access_token(_token("iat_spent", 1, now), now)
        await store.use_initial_access_token(hash_secret("iat_spent"), now)
        await store.save_initial_access_token(_token("iat_live", 2, now), now)
        await store.save_initial_access_token(_token("iat_forever", 1, now, ttl=None), now)
        purged = await store.purge_expired(now + 60)
        # The spent one may already be gone (it has no use left to keep it).
        assert purged.initial_access_tokens in (1, 2)
        assert purged.total == purged.initial_access_tokens
        assert (await store.purge_expired(now + 60)).initial_access_tokens == 0
        assert await store.use_initial_access_token(hash_secret("iat_live"), now + 60) is True
        assert await store.use_initial_access_token(hash_secret("iat_forever"), now + 60)

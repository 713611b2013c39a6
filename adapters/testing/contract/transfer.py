"""The transfer part of the Store contract: ``export_*`` / ``import_*`` of every part
(users, groups, codes, tokens, claims, clients and initial access tokens, sessions,
consents and device authorizations).

:class:`TransferContract` is a base of :class:`~adapters.testing.StoreContract`, so every
adapter runs these tests with the same ``store`` and ``now`` fixtures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
import pytest

from adapters.testing.contract.fixtures import StoreFixtures
from domain.clients import (
    AUTH_BASIC,
    GRANT_AUTHORIZATION_CODE,
    Client,
    ClientSecret,
    InitialAccessToken,
)
from domain.consent import Consent, ConsentGrant, ConsentRecord
from domain.device import DeviceAuthorization, DeviceDecision, PollApproved
from domain.entities import (
    AccessToken,
    Address,
    AuthorizationCode,
    ConsumedCode,
    Email,
    EnterpriseUser,
    Group,
    GroupRef,
    Manager,
    Member,
    MultiValue,
    Name,
    RefreshToken,
    Reused,
    Taken,
    User,
)
from domain.errors import Conflict, InvalidReference
from domain.records import Batch, Claim, ConsumedCodeRecord, ReuseMarker, UserRecord
from domain.sessions import Session, SessionGrant, SessionRecord
from domain.tokens import hash_token
from ports.store import Store

T = TypeVar("T")
T0 = 1_600_000_000
HOUR = 3600
DAY = 86400


async def drain(
    export: Callable[[str | None, int, int], Awaitable[Batch[T]]], now: int, limit: int = 100
) -> list[T]:
    """Every record of one export, batch by batch, checking each batch's size."""
    records: list[T] = []
    cursor: str | None = None
    for _ in range(10_000):
        batch = await export(cursor, limit, now)
        assert len(batch.records) <= limit
        records.extend(batch.records)
        if batch.cursor is None:
            return records
        cursor = batch.cursor
    raise AssertionError("the export never ended")


def _user(user_id: str, user_name: str, **changes: object) -> User:
    user = User(
        id=user_id,
        user_name=user_name,
        external_id=f"ext-{user_id}",
        display_name=user_name.title(),
        name=Name(formatted=f"{user_name} Doe", given_name=user_name, family_name="Doe"),
        emails=(Email(value=f"{user_name}@example.com", type="work", primary=True),),
        active=True,
        created=T0,
        last_modified=T0 + 60,
        version=3,
    )
    return msgspec.structs.replace(user, **changes)


def _record(user: User, password_hash: str | None = None, totp_secret: str | None = None,
            totp_confirmed: bool = False) -> UserRecord:
    return UserRecord(user=user, password_hash=password_hash, totp_secret=totp_secret,
                      totp_confirmed=totp_confirmed)


def _group(group_id: str, name: str, *member_ids: str, version: int = 2) -> Group:
    return Group(
        id=group_id,
        display_name=name,
        external_id=f"ext-{group_id}",
        members=tuple(Member(value=member_id) for member_id in member_ids),
        created=T0,
        last_modified=T0 + 120,
        version=version,
    )


def _code(name: str, exp: int) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=hash_token(name), client_id="client-a", redirect_uri="https://c.example/cb",
        scope="openid", exp=exp, grant_id=f"grant-{name}", user_id="u-1", nonce="n",
        pkce_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", pkce_method="S256",
        auth_time=exp - 600, mfa_verified=True, sid=f"sid_{name}", acr="mfa",
        amr=("pwd", "otp", "mfa"), resources=("https://api.example/v1", "urn:example:r"),
    )


def _access(name: str, now: int, *, active: bool = True, grant_id: str | None = "grant-1",
            sub: str | None = "u-1", ttl: int = HOUR) -> AccessToken:
    return AccessToken(
        token_hash=hash_token(name), token_display=name[:7] + "...", active=active,
        scope="openid read", client_id="client-a", exp=now + ttl, iat=now - 5, sub=sub,
        token_binding="bind", mfa_verified=True, grant_id=grant_id, auth_time=now - 50,
        audience=("https://api.example/v1",), act=("orders-api", "gateway"),
    )


def _refresh(name: str, access: AccessToken, now: int, *, grant_id: str = "grant-1",
             ttl: int = DAY) -> RefreshToken:
    return RefreshToken(
        token_hash=hash_token(name), access_token_hash=access.token_hash, exp=now + ttl,
        iat=now - 5, grant_id=grant_id, client_id="client-a", scope="openid read",
        sub=access.sub, mfa_verified=True, auth_time=now - 50, binding="jkt:transfer-key",
        resources=("https://api.example/v1", "urn:example:r"),
    )


def _client(client_id: str, **changes: object) -> Client:
    client = Client(
        client_id=client_id, name=f"App {client_id}",
        secrets=(ClientSecret.of("secret-" + "s" * 40, created_at=T0, expires_at=T0 + DAY),),
        redirect_uris=("https://app.example/cb",),
        grant_types=frozenset({GRANT_AUTHORIZATION_CODE}),
        scopes=frozenset({"openid", "profile"}), auth_methods=frozenset({AUTH_BASIC}),
        jwks={"keys": [{"kty": "EC", "crv": "P-256", "kid": "a", "x": "x", "y": "y"}]},
        access_token_lifetime=300, created_at=T0, updated_at=T0 + 9, version=1,
    )
    return msgspec.structs.replace(client, **changes)


def _initial(name: str, uses: int, now: int, *, ttl: int | None = HOUR) -> InitialAccessToken:
    return InitialAccessToken(digest=hash_token(name), uses_left=uses, created_at=now - 5,
                              expires_at=None if ttl is None else now + ttl)


def _session(name: str, now: int, **changes: object) -> Session:
    session = Session(
        id_hash=hash_token(name), sid=f"sid_{name}", user_id="u-1", auth_time=now - 50,
        amr=("pwd", "otp", "mfa"), acr="mfa", created_at=now - 50, idle_exp=now + HOUR,
        exp=now + DAY, clients=("client-a", "client-b"),
    )
    return msgspec.structs.replace(session, **changes)


def _consent(user_id: str, client_id: str, now: int, **changes: object) -> Consent:
    consent = Consent(user_id=user_id, client_id=client_id, scopes=("email", "openid"),
                      created_at=now - 100, updated_at=now - 10)
    return msgspec.structs.replace(consent, **changes)


def _device(name: str, now: int, **changes: object) -> DeviceAuthorization:
    authorization = DeviceAuthorization(
        device_code_hash=hash_token(f"dc_{name}"), user_code_hash=hash_token(f"uc_{name}"),
        client_id="client-a", scope="openid", exp=now + 600, interval=5, created_at=now - 5,
        resources=("https://api.example",), last_poll=now - 1,
    )
    return msgspec.structs.replace(authorization, **changes)


class TransferContract(StoreFixtures):
    """Export and import of every part, as :mod:`ports.store` states them."""

    # Paging

    async def test_export_of_an_empty_store_is_one_empty_last_batch(
        self, store: Store, now: int
    ) -> None:
        assert await store.export_users(None, 10, now) == Batch(records=(), cursor=None)
        assert await store.export_groups(None, 10, now) == Batch(records=(), cursor=None)

    @pytest.mark.parametrize("count", [1, 4, 5])
    async def test_export_pages_cover_every_record_once(
        self, store: Store, now: int, count: int
    ) -> None:
        for i in range(count):
            await store.create_user(User(id=f"u-{i}", user_name=f"user{i}"))
        batches: list[Batch[UserRecord]] = []
        cursor: str | None = None
        while True:
            batch = await store.export_users(cursor, 2, now)
            batches.append(batch)
            if batch.cursor is None:
                break
            cursor = batch.cursor
        ids = [record.user.id for batch in batches for record in batch.records]
        assert sorted(ids) == [f"u-{i}" for i in range(count)]
        assert all(len(batch.records) <= 2 for batch in batches)
        assert len(batches) <= count // 2 + 1

    # Users

    async def test_export_users_gives_each_user_as_stored_with_its_credentials(
        self, store: Store, now: int
    ) -> None:
        alice = await store.create_user(_user("u-a", "alice"), password_hash="$argon2id$a")
        await store.set_totp("u-a", "sealed:opaque-seed", confirmed=True)
        created = await store.create_user(_user("u-b", "bob"))
        bob = await store.replace_user(msgspec.structs.replace(created, display_name="Bobby"))
        await store.create_group(_group("g-1", "staff", "u-a"))
        records = await drain(store.export_users, now)
        assert records == [
            UserRecord(user=msgspec.structs.replace(alice, groups=()),
                       password_hash="$argon2id$a", totp_secret="sealed:opaque-seed",
                       totp_confirmed=True),
            UserRecord(user=msgspec.structs.replace(bob, groups=())),
        ]
        assert bob.version == 2

    async def test_import_users_stores_them_exactly(self, store: Store, now: int) -> None:
        alice = _user("u-a", "alice", version=7, active=False)
        records = (
            _record(alice, password_hash="$argon2id$h", totp_secret="SEED", totp_confirmed=True),
            _record(_user("u-b", "bob")),
        )
        assert await store.import_users(records, now) == 2
        assert await store.get_user("u-a") == alice
        assert await store.find_user_by_name("ALICE") == alice
        credentials = await store.get_credentials("u-a")
        assert (credentials.password_hash, credentials.totp_secret, credentials.totp_confirmed) \
            == ("$argon2id$h", "SEED", True)
        assert await drain(store.export_users, now) == list(records)

    async def test_every_user_attribute_is_copied_and_the_manager_display_is_not(
        self, store: Store, now: int
    ) -> None:
        boss = _user("u-boss", "boss")
        enterprise = EnterpriseUser(employee_number="7", cost_center="C", organization="O",
                                    division="D", department="R&D",
                                    manager=Manager("u-boss", "a display to ignore"))
        full = _user(
            "u-a", "alice",
            name=Name(formatted="Dr. Alice P. Doe", given_name="Alice", family_name="Doe",
                      middle_name="P.", honorific_prefix="Dr.", honorific_suffix="PhD"),
            nick_name="Al", profile_url="https://example.com/alice", title="Guide",
            user_type="Employee", preferred_language="en-GB", locale="en-GB",
            timezone="Europe/London",
            phone_numbers=(MultiValue("+44 20 7946 0000", "work", True, "desk"),),
            addresses=(Address(street_address="1 Way", locality="London", postal_code="N1",
                               country="GB", type="work", primary=True),),
            photos=(MultiValue("https://example.com/a.jpg", "photo"),),
            x509_certificates=(MultiValue("MIIBszCCAR"),),
            enterprise=enterprise,
        )
        assert await store.import_users((_record(boss), _record(full)), now) == 2
        stored = msgspec.structs.replace(full, enterprise=msgspec.structs.replace(
            enterprise, manager=Manager("u-boss")))
        assert await drain(store.export_users, now) == [_record(stored), _record(boss)]
        read = await store.get_user("u-a")
        assert read == msgspec.structs.replace(full, enterprise=msgspec.structs.replace(
            enterprise, manager=Manager("u-boss", "Boss")))
        assert await store.import_users((_record(stored),), now) == 0

    async def test_importing_the_same_users_again_changes_nothing(
        self, store: Store, now: int
    ) -> None:
        records = (_record(_user("u-a", "alice"), password_hash="$argon2id$h"),)
        await store.import_users(records, now)
        assert await store.import_users(records, now) == 0
        assert await drain(store.export_users, now) == list(records)

    async def test_import_users_overwrites_with_the_record(self, store: Store, now: int) -> None:
        await store.create_user(_user("u-a", "alice"), password_hash="$argon2id$old")
        renamed = _user("u-a", "alicia", version=9)
        assert await store.import_users((_record(renamed),), now) == 1
        assert await store.get_user("u-a") == renamed
        assert await store.find_user_by_name("alice") is None
        assert (await store.get_credentials("u-a")).password_hash is None

    async def test_import_users_counts_only_changed_credentials(
        self, store: Store, now: int
    ) -> None:
        user = _user("u-a", "alice")
        await store.import_users((_record(user),), now)
        assert await store.import_users((_record(user, password_hash="$argon2id$n"),), now) == 1
        assert (await store.get_credentials("u-a")).password_hash == "$argon2id$n"

    async def test_import_users_name_clash_is_a_conflict_and_writes_nothing(
        self, store: Store, now: int
    ) -> None:
        await store.create_user(_user("u-x", "alice"))
        batch = (_record(_user("u-new", "carol")), _record(_user("u-a", "ALICE")))
        with pytest.raises(Conflict) as raised:
            await store.import_users(batch, now)
        assert raised.value.attribute == "userName"
        assert [r.user.id for r in await drain(store.export_users, now)] == ["u-x"]

    # Groups

    async def test_export_groups_gives_members_in_order_without_display(
        self, store: Store, now: int
    ) -> None:
        for user_id, name in (("u-b", "bob"), ("u-a", "alice")):
            await store.create_user(_user(user_id, name))
        group = await store.create_group(Group(
            id="g-1", display_name="staff",
            members=(Member(value="u-b", display="x"), Member(value="u-a", type="User")),
            created=T0, last_modified=T0,
        ))
        records = await drain(store.export_groups, now)
        assert records == [msgspec.structs.replace(
            group, members=(Member(value="u-b"), Member(value="u-a"))
        )]

    async def test_import_groups_stores_them_with_their_memberships(
        self, store: Store, now: int
    ) -> None:
        await store.import_users((_record(_user("u-a", "alice")), _record(_user("u-b", "bob"))),
                                 now)
        group = _group("g-1", "staff", "u-b", "u-a", version=5)
        assert await store.import_groups((group, _group("g-2", "empty")), now) == 2
        stored = await store.get_group("g-1")
        assert stored.version == 5 and stored.created == T0
        assert stored.members == (Member(value="u-b", display="bob"),
                                  Member(value="u-a", display="alice"))
        assert (await store.get_user("u-a")).groups == (GroupRef(value="g-1", display="staff"),)
        assert await store.import_groups((group, _group("g-2", "empty")), now) == 0
        assert await drain(store.export_groups, now) == [group, _group("g-2", "empty")]

    async def test_import_groups_replaces_the_member_list(self, store: Store, now: int) -> None:
        await store.import_users((_record(_user("u-a", "alice")), _record(_user("u-b", "bob"))),
                                 now)
        await store.import_groups((_group("g-1", "staff", "u-a", "u-b"),), now)
        assert await store.import_groups((_group("g-1", "staff", "u-b"),), now) == 1
        assert (await store.get_user("u-a")).groups == ()
        assert [m.value for m in (await store.get_group("g-1")).members] == ["u-b"]

    async def test_import_groups_with_an_unknown_member_writes_nothing(
        self, store: Store, now: int
    ) -> None:
        await store.import_users((_record(_user("u-a", "alice")),), now)
        batch = (_group("g-1", "fine", "u-a"), _group("g-2", "broken", "u-missing"))
        with pytest.raises(InvalidReference):
            await store.import_groups(batch, now)
        assert await drain(store.export_groups, now) == []
        assert (await store.get_user("u-a")).groups == ()

    async def test_import_groups_name_clash_is_a_conflict(self, store: Store, now: int) -> None:
        await store.create_group(_group("g-x", "staff"))
        with pytest.raises(Conflict) as raised:
            await store.import_groups((_group("g-1", "STAFF"),), now)
        assert raised.value.attribute == "displayName"

    # Codes

    async def test_export_codes_gives_live_codes_only(self, store: Store, now: int) -> None:
        live, old, taken = _code("ac_live", now + 600), _code("ac_old", now), _code("ac_t", now + 9)
        for code in (live, old, taken):
            await store.save_code(code, now - 10)
        await store.take_code(taken.code_hash, now, remember_until=now + 300)
        assert await drain(store.export_codes, now) == [live]

    async def test_import_codes_stores_them_once(self, store: Store, now: int) -> None:
        live, old = _code("ac_live", now + 600), _code("ac_old", now)
        assert await store.import_codes((live, old), now) == 1
        assert await store.import_codes((live,), now) == 0
        assert await store.take_code(old.code_hash, now, remember_until=now + 60) is None
        assert await store.take_code(live.code_hash, now, remember_until=now + 60) == live

    async def test_import_codes_never_brings_back_a_consumed_code(
        self, store: Store, now: int
    ) -> None:
        code = _code("ac_used", now + 600)
        await store.save_code(code, now)
        await store.take_code(code.code_hash, now, remember_until=now + 600)
        assert await store.import_codes((code,), now) == 0
        again = await store.take_code(code.code_hash, now + 1, remember_until=now + 600)
        assert again == ConsumedCode(code.code_hash, code.grant_id, code.client_id)

    async def test_consumed_codes_travel_with_their_expiry(self, store: Store, now: int) -> None:
        code = _code("ac_used", now + 60)
        await store.save_code(code, now)
        await store.take_code(code.code_hash, now, remember_until=now + 900)
        tomb = ConsumedCodeRecord(
            code_hash=code.code_hash, grant_id=code.grant_id, client_id="client-a", exp=now + 900
        )
        assert await drain(store.export_consumed_codes, now) == [tomb]
        assert await drain(store.export_consumed_codes, now + 900) == []

    async def test_import_consumed_codes_consumes_a_live_copy_of_the_code(
        self, store: Store, now: int
    ) -> None:
        code = _code("ac_x", now + 600)
        await store.import_codes((code,), now)
        tomb = ConsumedCodeRecord(
            code_hash=code.code_hash, grant_id=code.grant_id, client_id="client-a", exp=now + 900
        )
        assert await store.import_consumed_codes((tomb,), now) == 1
        assert await store.import_consumed_codes((tomb,), now) == 0
        taken = await store.take_code(code.code_hash, now + 1, remember_until=now + 1000)
        assert taken == ConsumedCode(code.code_hash, code.grant_id, "client-a")
        assert await store.take_code(code.code_hash, now + 900, remember_until=now) is None

    async def test_import_consumed_codes_never_shortens_a_tombstone(
        self, store: Store, now: int
    ) -> None:
        code = _code("ac_y", now + 60)
        await store.save_code(code, now)
        await store.take_code(code.code_hash, now, remember_until=now + 900)
        earlier = ConsumedCodeRecord(
            code_hash=code.code_hash, grant_id=code.grant_id, client_id="client-a", exp=now + 100
        )
        assert await store.import_consumed_codes((earlier,), now) == 0
        later = await store.take_code(code.code_hash, now + 500, remember_until=now + 900)
        assert isinstance(later, ConsumedCode)

    # Access tokens

    async def test_export_access_tokens_includes_revoked_but_not_expired(
        self, store: Store, now: int
    ) -> None:
        live, revoked = _access("tk_live", now), _access("tk_rev", now)
        expired = _access("tk_old", now, ttl=0)
        for token in (live, revoked, expired):
            await store.save_tokens(token, None, now - 10)
        await store.revoke_access_token(revoked.token_hash, now)
        exported = await drain(store.export_access_tokens, now)
        assert sorted(exported, key=lambda t: t.token_hash) == sorted(
            [live, msgspec.structs.replace(revoked, active=False)], key=lambda t: t.token_hash
        )

    async def test_import_access_tokens_stores_them_indexed(self, store: Store, now: int) -> None:
        by_grant = _access("tk_g", now, grant_id="grant-9", sub=None)
        by_sub = _access("tk_s", now, grant_id=None, sub="u-7")
        client = _access("tk_c", now, grant_id=None, sub=None)
        expired = _access("tk_e", now, ttl=0)
        assert await store.import_access_tokens((by_grant, by_sub, client, expired), now) == 3
        assert await store.import_access_tokens((by_grant, by_sub, client), now) == 0
        assert await store.get_access_token(client.token_hash, now) == client
        assert await store.get_access_token(expired.token_hash, now - 1) is None
        assert await store.revoke_grant("grant-9", now) == 1
        assert await store.revoke_subject("u-7", now) == 1
        for token in (by_grant, by_sub):
            record = await store.get_access_token(token.token_hash, now)
            assert record is not None and record.active is False and record.exp == token.exp

    async def test_import_access_tokens_never_reactivates_a_revoked_token(
        self, store: Store, now: int
    ) -> None:
        token = _access("tk_r", now)
        await store.save_tokens(token, None, now)
        await store.revoke_access_token(token.token_hash, now)
        assert await store.import_access_tokens((token,), now) == 0
        record = await store.get_access_token(token.token_hash, now)
        assert record is not None and record.active is False
        other = _access("tk_o", now)
        await store.save_tokens(other, None, now)
        revoked = msgspec.structs.replace(other, active=False)
        assert await store.import_access_tokens((revoked,), now) == 1
        assert await store.get_access_token(other.token_hash, now) == revoked

    # Refresh tokens and reuse markers

    async def test_refresh_tokens_travel_and_rotate_without_their_access_token(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_gone", now)
        refresh = _refresh("rt_1", access, now)
        assert await store.import_refresh_tokens((refresh, _refresh("rt_old", access, now,
                                                                      ttl=0)), now) == 1
        assert await store.import_refresh_tokens((refresh,), now) == 0
        assert await drain(store.export_refresh_tokens, now) == [refresh]
        assert await store.get_refresh_token(refresh.token_hash, now) == refresh
        assert await store.take_refresh_token(refresh.token_hash, now) == Taken(refresh)

    async def test_imported_refresh_tokens_are_revoked_with_their_grant(
        self, store: Store, now: int
    ) -> None:
        refresh = _refresh("rt_g", _access("tk_g", now), now, grant_id="grant-5")
        await store.import_refresh_tokens((refresh,), now)
        assert await store.revoke_grant("grant-5", now) == 1
        assert await store.get_refresh_token(refresh.token_hash, now) is None

    async def test_import_refresh_tokens_never_brings_back_a_rotated_one(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_1", now)
        refresh = _refresh("rt_1", access, now)
        await store.save_tokens(access, refresh, now)
        await store.take_refresh_token(refresh.token_hash, now)
        assert await store.import_refresh_tokens((refresh,), now) == 0
        assert await store.take_refresh_token(refresh.token_hash, now + 1) == Reused("grant-1")

    async def test_reuse_markers_travel_with_their_expiry(self, store: Store, now: int) -> None:
        access = _access("tk_1", now)
        refresh = _refresh("rt_1", access, now, grant_id="grant-3")
        await store.save_tokens(access, refresh, now)
        await store.take_refresh_token(refresh.token_hash, now)
        marker = ReuseMarker(token_hash=refresh.token_hash, grant_id="grant-3", exp=refresh.exp)
        assert await drain(store.export_reuse_markers, now) == [marker]
        assert await drain(store.export_reuse_markers, refresh.exp) == []

    async def test_import_reuse_markers_rotates_a_live_copy_of_the_token(
        self, store: Store, now: int
    ) -> None:
        access = _access("tk_1", now)
        refresh = _refresh("rt_1", access, now, grant_id="grant-3")
        await store.save_tokens(access, refresh, now)
        marker = ReuseMarker(token_hash=refresh.token_hash, grant_id="grant-3", exp=refresh.exp)
        assert await store.import_reuse_markers((marker,), now) == 1
        assert await store.import_reuse_markers((marker,), now) == 0
        assert await store.get_refresh_token(refresh.token_hash, now) is None
        assert await store.take_refresh_token(refresh.token_hash, now + 1) == Reused("grant-3")
        expired = ReuseMarker(token_hash=hash_token("rt_x"), grant_id="g", exp=now)
        assert await store.import_reuse_markers((expired,), now) == 0

    # Claims

    async def test_claims_travel_and_stay_claimed(self, store: Store, now: int) -> None:
        await store.claim_once("totp:u-1:123456", now + 90, now)
        await store.claim_once("lock:old", now, now - 10)
        assert await drain(store.export_claims, now) == [Claim(key="totp:u-1:123456",
                                                               exp=now + 90)]
        claim = Claim(key="totp:u-2:654321", exp=now + 90)
        assert await store.import_claims((claim, Claim(key="gone", exp=now)), now) == 1
        assert await store.import_claims((claim,), now) == 0
        assert await store.claim_once(claim.key, now + 200, now + 89) is False
        assert await store.claim_once(claim.key, now + 200, now + 90) is True

    async def test_import_claims_never_shortens_a_claim(self, store: Store, now: int) -> None:
        await store.claim_once("k", now + 300, now)
        assert await store.import_claims((Claim(key="k", exp=now + 10),), now) == 0
        assert await store.claim_once("k", now + 400, now + 100) is False
        assert await store.import_claims((Claim(key="k", exp=now + 600),), now) == 1
        assert await store.claim_once("k", now + 700, now + 500) is False

    # Clients and initial access tokens

    async def test_export_clients_gives_each_stored_client_by_id(
        self, store: Store, now: int
    ) -> None:
        for client_id in ("web", "cli", "api"):
            await store.create_client(_client(client_id))
        replaced = await store.replace_client(_client("cli", name="CLI 2"), expected_version=1)
        exported = await drain(store.export_clients, now, limit=2)
        assert [c.client_id for c in exported] == ["api", "cli", "web"]
        assert exported[1] == replaced
        assert await drain(store.export_clients, now) == \
            list((await store.list_clients(None, 10)).records)

    async def test_import_clients_writes_them_exactly_and_only_once(
        self, store: Store, now: int
    ) -> None:
        records = (_client("web", version=4), _client("api", version=1, jwks=None))
        assert await store.import_clients(records, now) == 2
        assert await store.get_client("web") == records[0]
        assert await store.import_clients(records, now) == 0
        assert await drain(store.export_clients, now) == [records[1], records[0]]
        # A stored client goes on from the imported version.
        replaced = await store.replace_client(_client("web", name="Next"), expected_version=4)
        assert replaced.version == 5

    async def test_import_clients_replaces_the_targets_client(
        self, store: Store, now: int
    ) -> None:
        await store.create_client(_client("web", name="Target's"))
        source = _client("web", name="Source's", version=3)
        assert await store.import_clients((source,), now) == 1
        assert await store.get_client("web") == source
        assert (await store.counts(now)).clients == 1

    async def test_initial_access_tokens_travel_live_only_with_their_uses(
        self, store: Store, now: int
    ) -> None:
        live = [_initial(f"iat_{n}", n + 1, now) for n in range(3)]
        for token in live:
            await store.save_initial_access_token(token, now)
        await store.save_initial_access_token(_initial("iat_old", 2, now, ttl=10), now)
        await store.save_initial_access_token(_initial("iat_used", 1, now), now)
        await store.use_initial_access_token(hash_token("iat_used"), now)
        await store.use_initial_access_token(live[2].digest, now)
        exported = await drain(store.export_initial_access_tokens, now + 10, limit=2)
        spent_one = msgspec.structs.replace(live[2], uses_left=2)
        assert exported == sorted([live[0], live[1], spent_one], key=lambda t: t.digest)

    async def test_import_initial_access_tokens_never_hands_back_spent_uses(
        self, store: Store, now: int
    ) -> None:
        token = _initial("iat_x", 3, now)
        fresh = _initial("iat_y", 2, now, ttl=None)
        expired = _initial("iat_z", 2, now, ttl=0)
        assert await store.import_initial_access_tokens((token, fresh, expired), now) == 2
        assert await store.import_initial_access_tokens((token, fresh), now) == 0
        await store.use_initial_access_token(token.digest, now)
        await store.use_initial_access_token(token.digest, now)
        # The target spent two of the three uses: a copy of the source's 3 leaves it at 1.
        assert await store.import_initial_access_tokens((token,), now) == 0
        assert await drain(store.export_initial_access_tokens, now) == sorted(
            [msgspec.structs.replace(token, uses_left=1), fresh], key=lambda t: t.digest
        )
        fewer = msgspec.structs.replace(fresh, uses_left=1)
        assert await store.import_initial_access_tokens((fewer,), now) == 1
        assert await store.use_initial_access_token(fresh.digest, now) is True
        assert await store.use_initial_access_token(fresh.digest, now) is False

    # Sessions

    async def test_sessions_travel_live_only_with_their_grants(
        self, store: Store, now: int
    ) -> None:
        grants = (SessionGrant("client-a", "gr_1"), SessionGrant("client-b", "gr_2"))
        records = tuple(SessionRecord(_session(f"ses_{n}", now), grants) for n in range(3))
        idle = SessionRecord(_session("ses_idle", now, idle_exp=now), ())
        assert await store.import_sessions((*records, idle), now) == 3
        assert await store.import_sessions(records, now) == 0
        exported = await drain(store.export_sessions, now, limit=2)
        assert sorted(exported, key=lambda r: r.session.id_hash) == \
            sorted(records, key=lambda r: r.session.id_hash)
        assert await store.get_session(records[0].session.id_hash, now) == records[0].session
        ended = await store.end_session(records[1].session.id_hash, now)
        assert ended is not None and set(ended.grants) == set(grants)
        assert len(await drain(store.export_sessions, now)) == 2

    async def test_import_sessions_merges_and_never_prolongs_a_session(
        self, store: Store, now: int
    ) -> None:
        held = _session("ses_a", now, clients=("client-a",))
        await store.create_session(held, now)
        await store.add_session_grant(held.id_hash, SessionGrant("client-a", "gr_1"),
                                      now + HOUR, now)
        incoming = _session("ses_a", now, clients=("client-b",), auth_time=now - 10,
                            amr=("pwd",), acr="pwd", exp=now + 2 * DAY, idle_exp=now + 60)
        record = SessionRecord(incoming, (SessionGrant("client-b", "gr_2"),))
        assert await store.import_sessions((record,), now) == 1
        merged = await store.get_session(held.id_hash, now)
        assert merged is not None
        assert merged.clients == ("client-a", "client-b")
        assert (merged.auth_time, merged.amr, merged.acr) == (now - 10, ("pwd",), "pwd")
        assert (merged.exp, merged.idle_exp) == (held.exp, now + 60)
        ended = await store.end_session(held.id_hash, now)
        assert ended is not None
        assert set(ended.grants) == {SessionGrant("client-a", "gr_1"),
                                     SessionGrant("client-b", "gr_2")}

    # Consents

    async def test_consents_travel_with_their_live_grants(self, store: Store, now: int) -> None:
        records = (
            ConsentRecord(_consent("u-1", "client-a", now),
                          (ConsentGrant("gr_1", now + DAY), ConsentGrant("gr_dead", now))),
            ConsentRecord(_consent("u-1", "client-b", now), ()),
            ConsentRecord(_consent("u-2", "client-a", now), (ConsentGrant("gr_2", now + 60),)),
        )
        assert await store.import_consents(records, now) == 3
        assert await store.import_consents(records, now) == 0
        exported = await drain(store.export_consents, now, limit=2)
        assert exported == [
            ConsentRecord(records[0].consent, (ConsentGrant("gr_1", now + DAY),)),
            records[1], records[2],
        ]
        assert await store.get_consent("u-1", "client-a") == records[0].consent
        withdrawn = await store.withdraw_consent("u-2", "client-a", now)
        assert withdrawn is not None and withdrawn.grants == (ConsentGrant("gr_2", now + 60),)

    async def test_import_consents_merges_scopes_and_grants(self, store: Store, now: int) -> None:
        await store.grant_consent("u-1", "client-a", ("profile",), now)
        await store.record_consent_grant("u-1", "client-a", "gr_1", now + HOUR, now)
        incoming = ConsentRecord(
            _consent("u-1", "client-a", now, created_at=now - 500, updated_at=now - 400),
            (ConsentGrant("gr_2", now + DAY),))
        assert await store.import_consents((incoming,), now) == 1
        merged = await store.get_consent("u-1", "client-a")
        assert merged == Consent(user_id="u-1", client_id="client-a",
                                 scopes=("email", "openid", "profile"),
                                 created_at=now - 500, updated_at=now)
        withdrawn = await store.withdraw_consent("u-1", "client-a", now)
        assert withdrawn is not None
        assert set(withdrawn.grants) == {ConsentGrant("gr_1", now + HOUR),
                                         ConsentGrant("gr_2", now + DAY)}

    # Device authorizations

    async def test_device_authorizations_travel_live_only(self, store: Store, now: int) -> None:
        pending = _device("a", now)
        approved = _device("b", now, status="approved", user_id="u-1", auth_time=now - 9,
                           amr=("pwd",), acr="pwd", sid="sid_x")
        expired = _device("c", now, exp=now)
        assert await store.import_device_authorizations((pending, approved, expired), now) == 2
        assert await store.import_device_authorizations((pending, approved), now) == 0
        assert await drain(store.export_device_authorizations, now, limit=1) == sorted(
            [pending, approved], key=lambda a: a.device_code_hash)
        taken = await store.poll_device_authorization(approved.device_code_hash, now + 10)
        assert isinstance(taken, PollApproved) and taken.authorization.sid == "sid_x"

    async def test_import_device_authorizations_never_undoes_a_decision(
        self, store: Store, now: int
    ) -> None:
        held = _device("a", now)
        await store.save_device_authorization(held, now)
        await store.decide_device_authorization(held.user_code_hash,
                                                DeviceDecision(status="denied"), now)
        assert await store.import_device_authorizations((held,), now) == 0
        found = await store.find_device_authorization(held.user_code_hash, now)
        assert found is not None and found.status == "denied"
        other = _device("b", now)
        await store.save_device_authorization(other, now)
        decided = msgspec.structs.replace(other, status="approved", user_id="u-1")
        assert await store.import_device_authorizations((decided,), now) == 1
        found = await store.find_device_authorization(other.user_code_hash, now)
        assert found is not None and found.status == "approved"

    async def test_an_imported_decision_never_takes_another_live_records_user_code(
        self, store: Store, now: int
    ) -> None:
        mine, theirs = _device("mine", now), _device("theirs", now)
        await store.save_device_authorization(mine, now)
        await store.save_device_authorization(theirs, now)
        stolen = msgspec.structs.replace(mine, status="approved", user_id="u-1",
                                         user_code_hash=theirs.user_code_hash)
        assert await store.import_device_authorizations((stolen,), now) == 0
        assert await store.find_device_authorization(theirs.user_code_hash, now) == theirs
        assert await store.find_device_authorization(mine.user_code_hash, now) == mine

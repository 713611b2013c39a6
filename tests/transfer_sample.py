"""A store with one of everything, to copy: the sample the transfer tests share.

``seed`` writes, through the port as the service does, users with password hashes, a TOTP
seed, a verified email, passkeys and recovery codes, groups with members, stored clients
(one replaced, one deleted), initial access tokens (one partly spent), a live code, a
consumed code's tombstone, access tokens active and revoked, refresh tokens, a reuse
marker, a claim and a counter, browser sessions (one with grants, one ended), consents
(one with a grant, one withdrawn), device authorizations and account tokens (a reset link
and a verification link live, one spent), and expired records of each kind;
``EXPECTED`` is what a copy must carry of it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from adapters.testing.contract.transfer import drain
from domain.clients import (
    AUTH_NONE,
    AUTH_PRIVATE_KEY_JWT,
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    Client,
    ClientSecret,
    InitialAccessToken,
    hash_secret,
)
from domain.device import DeviceAuthorization, DeviceDecision, PollApproved
from domain.entities import (
    AccessToken,
    AccountToken,
    AccountTokenKind,
    Address,
    AuthorizationCode,
    ConsumedCode,
    Email,
    EnterpriseUser,
    Group,
    Manager,
    Member,
    MultiValue,
    Name,
    Passkey,
    RefreshToken,
    Reused,
    Taken,
    User,
)
from domain.sessions import Session, SessionGrant
from domain.tokens import hash_token
from domain.transfer import COPY_STEPS
from ports.store import Store
from tests.doubles import T0

USERS = 7
EXPECTED = {
    "users": USERS, "groups": 2, "clients": 2, "initial_access_tokens": 2, "codes": 1,
    "consumed_codes": 1, "access_tokens": 5, "refresh_tokens": 2, "reuse_markers": 1,
    "claims": 1, "sessions": 2, "consents": 1, "device_authorizations": 2, "account_tokens": 2,
}


def _access(name: str, now: int, *, ttl: int = 3600, grant_id: str | None = "grant-1",
            sub: str | None = "u-alice") -> AccessToken:
    return AccessToken(
        token_hash=hash_token(name), token_display=name[:7] + "...", active=True,
        scope="openid read", client_id="web", exp=now + ttl, iat=now, sub=sub,
        mfa_verified=sub is not None, grant_id=grant_id, auth_time=now - 30 if sub else None,
        audience=("https://api.example/v1",) if sub else (),
    )


def _refresh(name: str, access: AccessToken, now: int, *, ttl: int = 86400) -> RefreshToken:
    return RefreshToken(
        token_hash=hash_token(name), access_token_hash=access.token_hash, exp=now + ttl,
        iat=now, grant_id=access.grant_id or "", client_id="web", scope=access.scope,
        sub=access.sub, mfa_verified=True, auth_time=access.auth_time,
        resources=("https://api.example/v1", "urn:example:reports"),
    )


#: The clear secret of the stored client ``svc``: never in the store, so never in a copy.
SVC_SECRET = "svc-secret-" + "x" * 40


def _clients(now: int) -> tuple[Client, ...]:
    return (
        Client(client_id="spa", name="Single page app", redirect_uris=("https://spa.example/cb",),
               grant_types=frozenset({GRANT_AUTHORIZATION_CODE}),
               scopes=frozenset({"openid", "profile"}), auth_methods=frozenset({AUTH_NONE}),
               allowed_cors_origins=("https://spa.example",), registered=True,
               registration_token_digest=hash_secret("rat_spa"), created_at=now - 60),
        Client(client_id="svc", name="Service",
               secrets=(ClientSecret.of(SVC_SECRET, created_at=now - 60, expires_at=now + 86400),),
               grant_types=frozenset({GRANT_CLIENT_CREDENTIALS}),
               scopes=frozenset({"scim:read", "scim:write"}),
               auth_methods=frozenset({AUTH_PRIVATE_KEY_JWT}),
               jwks={"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "x": "x", "y": "y"}]},
               created_at=now - 60),
        Client(client_id="gone", name="Deleted", created_at=now - 60),
    )


def _code(name: str, exp: int) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=hash_token(name), client_id="web", redirect_uri="https://app.example/cb",
        scope="openid", exp=exp, grant_id=f"grant-{name}", user_id="u-alice", nonce="n-1",
        pkce_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", pkce_method="S256",
        auth_time=exp - 600, mfa_verified=False, sid="sid_web", acr="pwd", amr=("pwd",),
        resources=("https://api.example/v1",),
    )


def _passkey(name: str, user_id: str, **changes: Any) -> Passkey:
    passkey = Passkey(
        credential_id=f"cred-{name}", user_id=user_id, public_key=f"pQECAyYgASFY-{name}",
        sign_count=7, transports=("internal", "hybrid"), name=f"Key {name}", synced=True,
        created_at=T0 - 600, last_used_at=T0 - 60,
    )
    return msgspec.structs.replace(passkey, **changes)


def _link(name: str, now: int, kind: AccountTokenKind = "password_reset", *,
          ttl: int = 1800) -> AccountToken:
    return AccountToken(token_hash=hash_token(f"lk_{name}"), kind=kind, user_id="u-alice",
                        email="alice@example.com", created_at=now - 60, exp=now + ttl)


def _session(name: str, now: int, **changes: Any) -> Session:
    session = Session(
        id_hash=hash_token(name), sid=f"sid_{name}", user_id="u-alice", auth_time=now - 30,
        amr=("pwd", "otp", "mfa"), acr="mfa", created_at=now - 30, idle_exp=now + 3600,
        exp=now + 86400,
    )
    return msgspec.structs.replace(session, **changes)


async def seed(store: Store, now: int) -> None:
    """One of everything, live and expired, written through the port as the service does."""
    await store.create_user(User(
        id="u-alice", user_name="alice", display_name="Alice",
        name=Name(formatted="Alice Liddell", given_name="Alice", family_name="Liddell"),
        emails=(Email(value="alice@example.com", type="work", primary=True),),
        created=T0 - 86400, last_modified=T0 - 3600,
        title="Guide", timezone="Europe/London",
        phone_numbers=(MultiValue("+44 20 7946 0000", "work", True),),
        addresses=(Address(locality="London", country="GB", type="work"),),
        enterprise=EnterpriseUser(employee_number="7", department="R&D",
                                  manager=Manager("u-bob")),
    ), password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA")
    # A TOTP seed as the store keeps it (sealed or not): copied as an opaque string.
    await store.set_totp("u-alice", "v1.sealed.Zm9vYmFy", confirmed=True)
    await store.set_verified_email("u-alice", "alice@example.com")
    await store.add_passkey(_passkey("phone", "u-alice"))
    await store.add_passkey(_passkey("usb", "u-alice", sign_count=0, transports=("usb",),
                                     synced=False, created_at=T0 - 300, last_used_at=None))
    await store.replace_recovery_codes("u-alice", [hash_token(f"rc-{n}") for n in range(3)])
    assert await store.use_recovery_code("u-alice", hash_token("rc-0"))
    bob = await store.create_user(User(id="u-bob", user_name="bob", created=T0 - 50),
                                  password_hash="$argon2id$v=19$bob")
    await store.replace_user(msgspec.structs.replace(bob, active=False, last_modified=T0 - 10))
    for i in range(USERS - 2):
        await store.create_user(User(id=f"u-{i:02}", user_name=f"user{i:02}", created=T0))
    await store.create_group(Group(
        id="g-staff", display_name="Staff", external_id="ext-staff",
        members=(Member(value="u-bob"), Member(value="u-alice")), created=T0, last_modified=T0,
    ))
    await store.create_group(Group(id="g-empty", display_name="Nobody", created=T0))
    spa, svc, gone = _clients(now)
    for client in (spa, svc, gone):
        await store.create_client(client)
    await store.replace_client(msgspec.structs.replace(svc, name="Service (renamed)"),
                               expected_version=1)
    await store.delete_client(gone.client_id)
    await store.save_initial_access_token(InitialAccessToken(
        digest=hash_secret("iat_three"), uses_left=3, created_at=now - 60, expires_at=now + 3600,
    ), now)
    await store.use_initial_access_token(hash_secret("iat_three"), now)
    await store.save_initial_access_token(InitialAccessToken(
        digest=hash_secret("iat_forever"), uses_left=1, created_at=now - 60,
    ), now)
    await store.save_initial_access_token(InitialAccessToken(
        digest=hash_secret("iat_expired"), uses_left=5, created_at=now - 60, expires_at=now,
    ), now - 60)
    await store.save_code(_code("ac_live", now + 600), now)
    await store.save_code(_code("ac_used", now + 600), now)
    await store.take_code(hash_token("ac_used"), now, remember_until=now + 900)
    await store.save_code(_code("ac_expired", now), now - 600)

    first = _access("tk_first", now)
    await store.save_tokens(first, _refresh("rt_first", first, now), now)
    revoked = _access("tk_revoked", now, grant_id="grant-2")
    await store.save_tokens(revoked, None, now)
    await store.revoke_access_token(revoked.token_hash, now)
    await store.save_tokens(_access("tk_client", now, grant_id=None, sub=None), None, now)
    rotated = _access("tk_rotated", now, grant_id="grant-3")
    await store.save_tokens(rotated, _refresh("rt_rotated", rotated, now), now)
    assert isinstance(await store.take_refresh_token(hash_token("rt_rotated"), now), Taken)
    successor = _access("tk_successor", now, grant_id="grant-3")
    await store.save_tokens(successor, _refresh("rt_successor", successor, now), now)
    old = _access("tk_old", now - 7200, ttl=3600, grant_id="grant-4")
    await store.save_tokens(old, _refresh("rt_old", old, now - 7200, ttl=3600), now - 7200)

    await store.claim_once("totp:u-alice:123456", now + 90, now)

    for name in ("ses_web", "ses_ended", "ses_idle"):
        await store.create_session(_session(name, now), now)
    await store.add_session_grant(hash_token("ses_web"), SessionGrant("web", "grant-1"),
                                  now + 7200, now)
    await store.end_session(hash_token("ses_ended"), now)
    await store.create_session(_session("ses_gone", now, idle_exp=now), now - 10)
    await store.grant_consent("u-alice", "spa", ("openid", "profile"), now)
    await store.record_consent_grant("u-alice", "spa", "grant-spa", now + 86400, now)
    await store.grant_consent("u-bob", "spa", ("openid",), now)
    await store.withdraw_consent("u-bob", "spa", now)
    for name, exp in (("pending", now + 600), ("approved", now + 600), ("expired", now)):
        await store.save_device_authorization(DeviceAuthorization(
            device_code_hash=hash_token(f"dc_{name}"), user_code_hash=hash_token(f"uc_{name}"),
            client_id="tv", scope="openid", exp=exp, interval=5, created_at=now - 60,
        ), now - 60)
    await store.decide_device_authorization(hash_token("uc_approved"), DeviceDecision(
        status="approved", user_id="u-alice", auth_time=now - 30, amr=("pwd",), acr="pwd"), now)
    for link in (_link("reset", now), _link("verify", now, "email_verification"),
                 _link("spent", now), _link("expired", now, ttl=0)):
        await store.save_account_token(link, now - 60)
    assert await store.take_account_token("password_reset", hash_token("lk_spent"), now)
    await store.claim_once("totp:u-bob:000000", now, now - 90)
    await store.hit("signin:alice", 300, now)


async def snapshot(store: Store, now: int) -> dict[str, list[Any]]:
    """Every record of every part, through the port's exports."""
    return {
        step.name: await drain(
            lambda cursor, limit, at, step=step: step.read(store, cursor, limit, at), now,
            limit=3,
        )
        for step in COPY_STEPS
    }


async def check_target(target: Store, now: int) -> None:
    """What the copied records do in the target, beyond comparing them."""
    credentials = await target.get_credentials("u-alice")
    assert credentials.password_hash == "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"
    assert (credentials.totp_secret, credentials.totp_confirmed) == ("v1.sealed.Zm9vYmFy", True)
    bob = await target.get_user("u-bob")
    assert (bob.version, bob.active, bob.created) == (2, False, T0 - 50)
    assert [m.display for m in (await target.get_group("g-staff")).members] == ["bob", "alice"]
    assert [g.value for g in (await target.get_user("u-alice")).groups] == ["g-staff"]
    svc = await target.get_client("svc")
    assert svc is not None and (svc.version, svc.name) == (2, "Service (renamed)")
    assert svc.secret_matches(SVC_SECRET, now) and await target.get_client("gone") is None
    assert (await target.counts(now)).clients == 2
    # A copied initial access token keeps the uses it had left, no more.
    spent = [await target.use_initial_access_token(hash_secret("iat_three"), now)
             for _ in range(3)]
    assert spent == [True, True, False]
    assert await target.use_initial_access_token(hash_secret("iat_expired"), now) is False
    assert await target.take_code(hash_token("ac_used"), now, remember_until=now) == \
        ConsumedCode(hash_token("ac_used"), "grant-ac_used", "web")
    assert await target.take_code(hash_token("ac_expired"), now, remember_until=now) is None
    assert await target.get_access_token(hash_token("tk_old"), now) is None
    revoked = await target.get_access_token(hash_token("tk_revoked"), now)
    assert revoked is not None and not revoked.active
    # The rotated refresh token is still recognised as reused, which revokes its family.
    assert await target.take_refresh_token(hash_token("rt_rotated"), now) == Reused("grant-3")
    successor = await target.get_access_token(hash_token("tk_successor"), now)
    assert successor is not None and not successor.active
    assert await target.claim_once("totp:u-alice:123456", now + 90, now) is False
    assert await target.hit("signin:alice", 300, now, 0) == 0  # counters are not copied
    code = await target.take_code(hash_token("ac_live"), now, remember_until=now + 600)
    assert isinstance(code, AuthorizationCode)
    assert (code.sid, code.acr, code.amr) == ("sid_web", "pwd", ("pwd",))
    web = await target.get_session(hash_token("ses_web"), now)
    assert web is not None and web.clients == ("web",) and web.idle_exp == now + 7200
    assert await target.get_session(hash_token("ses_ended"), now) is None
    ended = await target.end_session_by_sid("sid_ses_web", now)
    assert ended is not None and ended.grants == (SessionGrant("web", "grant-1"),)
    assert await target.get_consent("u-bob", "spa") is None
    withdrawn = await target.withdraw_consent("u-alice", "spa", now)
    assert withdrawn is not None and [g.grant_id for g in withdrawn.grants] == ["grant-spa"]
    approved = await target.poll_device_authorization(hash_token("dc_approved"), now)
    assert isinstance(approved, PollApproved) and approved.authorization.user_id == "u-alice"
    assert await target.find_device_authorization(hash_token("uc_pending"), now) is not None


    # Passkeys, recovery codes and the verified email travel with their user.
    alice = await target.get_credentials("u-alice")
    assert alice.verified_email == "alice@example.com"
    assert await target.list_passkeys("u-alice") == [
        _passkey("phone", "u-alice"),
        _passkey("usb", "u-alice", sign_count=0, transports=("usb",), synced=False,
                 created_at=T0 - 300, last_used_at=None)]
    found = await target.find_passkey("cred-phone")
    assert found is not None and found.user_id == "u-alice"
    # The copied sign count still guards against a cloned authenticator.
    assert not await target.record_passkey_use("cred-phone", 7, now)
    assert await target.record_passkey_use("cred-phone", 8, now)
    assert await target.count_recovery_codes("u-alice") == 2
    assert not await target.use_recovery_code("u-alice", hash_token("rc-0"))
    assert await target.use_recovery_code("u-alice", hash_token("rc-1"))
    assert await target.count_recovery_codes("u-bob") == 0
    # A live link works once in the target; a spent or expired one not at all.
    reset = await target.take_account_token("password_reset", hash_token("lk_reset"), now)
    assert reset == _link("reset", now)
    assert await target.take_account_token("password_reset", hash_token("lk_reset"), now) is None
    assert await target.take_account_token("password_reset", hash_token("lk_spent"), now) is None
    assert await target.take_account_token(
        "password_reset", hash_token("lk_expired"), now) is None
    assert await target.revoke_account_tokens("u-alice", "email_verification", now) == 1

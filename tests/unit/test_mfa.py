"""TOTP: the pyotp adapter (±1 step, malformed input), the enrolment use cases (who may
enrol, replacing a factor with ``current_code``), seeds sealed at rest, and ``reset_mfa``."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import msgspec
import pyotp
import pytest

from adapters.memory.store import MemoryStore
from adapters.sealed_state import JoseSealer
from adapters.secret_sealing import AesGcmSecretSealer
from adapters.totp import PyotpTotp
from domain.entities import AccessToken, RefreshToken, User
from domain.errors import NotFound
from domain.mfa import (
    ENROLMENT_SECONDS,
    RECENT_AUTH_SECONDS,
    VERIFY_LIMIT,
    FactorAlreadyActive,
    FactorUnreadable,
    InvalidCurrentCode,
    InvalidEnrollment,
    NotAllowed,
    SignInTooOld,
    TooManyCodes,
    TotpEnrolment,
    confirm_totp,
    register_totp,
    reset_mfa,
    use_totp_code,
)
from domain.tokens import hash_token
from ports.sealing import UnreadableSecret
from tests.doubles import RecordingEvents
from tests.unit.session_doubles import no_sessions

NOW = 1_700_000_010
SECRET = pyotp.random_base32()
TOTP = PyotpTotp()
SEALER = JoseSealer(os.urandom(32))
SEEDS = AesGcmSecretSealer([os.urandom(32)])


def test_matching_step_accepts_one_step_either_side_only() -> None:
    step = NOW // 30
    for offset in (-1, 0, 1):
        code = pyotp.TOTP(SECRET).at(NOW + 30 * offset)
        assert TOTP.matching_step(SECRET, code, NOW) == step + offset
    for offset in (-2, 2):
        assert TOTP.matching_step(SECRET, pyotp.TOTP(SECRET).at(NOW + 30 * offset), NOW) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 456"])
def test_malformed_codes_never_match(code: str) -> None:
    assert TOTP.matching_step(SECRET, code, NOW) is None


def test_a_corrupt_seed_never_matches() -> None:
    assert TOTP.matching_step("not base32!", "123456", NOW) is None


def test_new_secrets_are_160_bit_base32_and_distinct() -> None:
    first, second = TOTP.new_secret(), TOTP.new_secret()
    assert first != second and len(first) == 32
    assert pyotp.TOTP(first).now().isdigit()


def test_provisioning_uri_names_account_and_issuer() -> None:
    uri = urlsplit(TOTP.provisioning_uri(SECRET, "alice", "https://id.example"))
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    query = parse_qs(uri.query)
    assert query["secret"] == [SECRET] and query["issuer"] == ["https://id.example"]


async def test_a_code_is_usable_once_until_it_expires() -> None:
    store = MemoryStore()
    code = pyotp.TOTP(SECRET).at(NOW)
    assert await use_totp_code(store, TOTP, "u1", SECRET, code, NOW)
    assert not await use_totp_code(store, TOTP, "u1", SECRET, code, NOW + 30)
    # Another user's identical code is independent.
    assert await use_totp_code(store, TOTP, "u2", SECRET, code, NOW)


async def _user(store: MemoryStore, name: str = "alice") -> User:
    return await store.create_user(User(user_name=name))


def _token(user: User | None, *, scope: str = "openid mfa", auth_time: int | None = NOW,
           client_id: str = "app") -> AccessToken:
    """The caller's access-token record, as the bearer resolution returns it."""
    return AccessToken(
        token_hash=hash_token(f"tk_{client_id}_{scope}"), token_display="tk_x...", active=True,
        scope=scope, client_id=client_id, exp=NOW + 3600, iat=NOW,
        sub=user.id if user is not None else None, auth_time=auth_time)


async def _register(store: MemoryStore, user: User, *, current_code: str | None = None,
                    now: int = NOW, caller: AccessToken | None = None,
                    seeds: AesGcmSecretSealer = SEEDS) -> TotpEnrolment:
    return await register_totp(store, TOTP, SEALER, seeds, caller=caller or _token(user),
                               issuer="iss", current_code=current_code,
                               recent_auth_seconds=RECENT_AUTH_SECONDS, now=now)


async def _confirm(store: MemoryStore, user: User, enrollment: str, code: str, *,
                   now: int = NOW, caller: AccessToken | None = None,
                   seeds: AesGcmSecretSealer = SEEDS) -> bool:
    confirmed = await confirm_totp(store, TOTP, SEALER, seeds, RecordingEvents(),
                                   caller=caller or _token(user), enrollment=enrollment,
                                   code=code, recent_auth_seconds=RECENT_AUTH_SECONDS, now=now)
    return confirmed is not None


async def _seed(store: MemoryStore, user: User, seeds: AesGcmSecretSealer = SEEDS) -> str:
    """The user's confirmed seed, opened from what the store holds."""
    credentials = await store.get_credentials(user.id)
    assert credentials.totp_confirmed and credentials.totp_secret is not None
    return seeds.open(credentials.totp_secret, f"totp:{user.id}").plaintext


async def _with_factor(store: MemoryStore, user: User, secret: str = SECRET) -> None:
    await store.set_totp(user.id, SEEDS.seal(secret, f"totp:{user.id}"), confirmed=True)


async def test_registering_stores_nothing_until_a_valid_code_confirms() -> None:
    store = MemoryStore()
    user = await _user(store)
    enrolment = await _register(store, user)
    assert "alice" in enrolment.otpauth_uri and enrolment.expires_at == NOW + ENROLMENT_SECONDS
    assert enrolment.secret not in enrolment.enrollment  # sealed, not merely signed
    assert (await store.get_credentials(user.id)).totp_secret is None
    assert not await _confirm(store, user, enrolment.enrollment, "000000")
    assert (await store.get_credentials(user.id)).totp_secret is None
    code = pyotp.TOTP(enrolment.secret).at(NOW)
    assert await _confirm(store, user, enrolment.enrollment, code)
    assert await _seed(store, user) == enrolment.secret
    # The confirming code is used up, and the enrolment cannot be confirmed again.
    assert not await use_totp_code(store, TOTP, user.id, enrolment.secret, code, NOW)
    with pytest.raises(FactorAlreadyActive):
        await _confirm(store, user, enrolment.enrollment, pyotp.TOTP(enrolment.secret).at(NOW))


@pytest.mark.parametrize(
    ("scope", "has_user"),
    [("read", True), ("openid profile email offline_access", True), ("mfa", False)],
)
async def test_a_token_without_the_mfa_scope_or_a_user_cannot_enrol(
    scope: str, has_user: bool
) -> None:
    # The attack: any token of the user (scope read, from any client) enrolled the
    # attacker's seed, and the victim's next sign-in demanded it.
    store = MemoryStore()
    user = await _user(store)
    caller = _token(user if has_user else None, scope=scope, client_id="other-app")
    with pytest.raises(NotAllowed):
        await _register(store, user, caller=caller)
    enrolment = await _register(store, user)  # a legitimate one, to try confirming with
    with pytest.raises(NotAllowed):
        await _confirm(store, user, enrolment.enrollment,
                       pyotp.TOTP(enrolment.secret).at(NOW), caller=caller)
    assert (await store.get_credentials(user.id)).totp_secret is None


@pytest.mark.parametrize("auth_time", [NOW - RECENT_AUTH_SECONDS - 1, None])
async def test_a_token_from_an_old_sign_in_cannot_enrol(auth_time: int | None) -> None:
    store = MemoryStore()
    user = await _user(store)
    stale = _token(user, auth_time=auth_time)
    with pytest.raises(SignInTooOld) as refused:
        await _register(store, user, caller=stale)
    assert refused.value.max_age == RECENT_AUTH_SECONDS
    enrolment = await _register(store, user)
    with pytest.raises(SignInTooOld):
        await _confirm(store, user, enrolment.enrollment,
                       pyotp.TOTP(enrolment.secret).at(NOW), caller=stale)
    assert (await store.get_credentials(user.id)).totp_secret is None
    # Exactly RECENT_AUTH_SECONDS old is still recent.
    assert await _register(store, user, caller=_token(user, auth_time=NOW - RECENT_AUTH_SECONDS))


async def test_replacing_a_confirmed_factor_needs_a_code_of_it() -> None:
    store = MemoryStore()
    user = await _user(store)
    await _with_factor(store, user)
    with pytest.raises(FactorAlreadyActive, match="current_code"):
        await _register(store, user)
    with pytest.raises(InvalidCurrentCode):
        await _register(store, user, current_code="000000")
    current = pyotp.TOTP(SECRET).at(NOW)
    enrolment = await _register(store, user, current_code=current)
    # The current code was claimed: it cannot register again, nor sign in.
    with pytest.raises(InvalidCurrentCode):
        await _register(store, user, current_code=current)
    assert not await use_totp_code(store, TOTP, user.id, SECRET, current, NOW)
    assert await _seed(store, user) == SECRET  # registering changed nothing
    new_code = pyotp.TOTP(enrolment.secret).at(NOW + 30)
    assert await _confirm(store, user, enrolment.enrollment, new_code, now=NOW + 30)
    assert await _seed(store, user) == enrolment.secret


async def test_wrong_current_codes_are_throttled_like_wrong_codes() -> None:
    store = MemoryStore()
    user = await _user(store)
    await _with_factor(store, user)
    for _ in range(VERIFY_LIMIT):
        with pytest.raises(InvalidCurrentCode):
            await _register(store, user, current_code="000000")
    with pytest.raises(TooManyCodes):
        await _register(store, user, current_code=pyotp.TOTP(SECRET).at(NOW))


async def test_an_enrolment_must_replace_the_factor_stored_at_confirmation() -> None:
    # Made before a factor existed: it cannot replace one confirmed since.
    store = MemoryStore()
    user = await _user(store)
    early = await _register(store, user)
    await _with_factor(store, user)
    with pytest.raises(FactorAlreadyActive):
        await _confirm(store, user, early.enrollment, pyotp.TOTP(early.secret).at(NOW))
    assert await _seed(store, user) == SECRET
    # Made to replace one factor: it cannot replace another, nor confirm after a reset.
    replacing = await _register(store, user, current_code=pyotp.TOTP(SECRET).at(NOW))
    other = pyotp.random_base32()
    await _with_factor(store, user, other)
    later = NOW + 30
    with pytest.raises(FactorAlreadyActive):
        await _confirm(store, user, replacing.enrollment,
                       pyotp.TOTP(replacing.secret).at(later), now=later)
    await reset_mfa(store, user_name="alice", now=later, sessions=no_sessions)
    with pytest.raises(InvalidEnrollment, match="gone"):
        await _confirm(store, user, replacing.enrollment,
                       pyotp.TOTP(replacing.secret).at(later), now=later)
    assert (await store.get_credentials(user.id)).totp_secret is None


async def test_an_abandoned_re_enrolment_leaves_the_confirmed_factor_in_force() -> None:
    store = MemoryStore()
    user = await _user(store)
    await _with_factor(store, user)
    await _register(store, user, current_code=pyotp.TOTP(SECRET).at(NOW))
    assert await _seed(store, user) == SECRET


async def test_the_confirmed_seed_is_stored_sealed_for_its_user_only() -> None:
    store = MemoryStore()
    alice, bob = await _user(store), await _user(store, "bob")
    enrolment = await _register(store, alice)
    assert await _confirm(store, alice, enrolment.enrollment,
                          pyotp.TOTP(enrolment.secret).at(NOW))
    stored = (await store.get_credentials(alice.id)).totp_secret
    assert stored is not None and enrolment.secret not in stored
    assert stored.startswith("sealed.v1.")
    with pytest.raises(UnreadableSecret):  # moved to another user's row
        SEEDS.open(stored, f"totp:{bob.id}")
    with pytest.raises(UnreadableSecret):  # without the key
        AesGcmSecretSealer([os.urandom(32)]).open(stored, f"totp:{alice.id}")


async def test_a_clear_seed_stored_before_sealing_is_resealed_when_replaced() -> None:
    store = MemoryStore()
    user = await _user(store)
    await store.set_totp(user.id, SECRET, confirmed=True)  # as an earlier version stored it
    enrolment = await _register(store, user, current_code=pyotp.TOTP(SECRET).at(NOW))
    # The successful use sealed the old seed; the enrolment still replaces it.
    assert (await store.get_credentials(user.id)).totp_secret != SECRET
    assert await _seed(store, user) == SECRET
    later = NOW + 30
    assert await _confirm(store, user, enrolment.enrollment,
                          pyotp.TOTP(enrolment.secret).at(later), now=later)
    assert await _seed(store, user) == enrolment.secret


async def test_a_factor_that_does_not_open_can_only_be_reset() -> None:
    store = MemoryStore()
    user = await _user(store)
    await _with_factor(store, user)
    lost_key = AesGcmSecretSealer([os.urandom(32)])
    with pytest.raises(FactorUnreadable):
        await _register(store, user, current_code=pyotp.TOTP(SECRET).at(NOW), seeds=lost_key)
    await reset_mfa(store, user_name="alice", now=NOW, sessions=no_sessions)
    assert await _register(store, user, seeds=lost_key)


def _tampered(enrollment: str) -> str:
    head, key, iv, ciphertext, tag = enrollment.split(".")
    flipped = ("A" if ciphertext[0] != "A" else "B") + ciphertext[1:]
    return ".".join((head, key, iv, flipped, tag))


async def test_tampered_expired_foreign_and_unrelated_enrolments_are_refused() -> None:
    store = MemoryStore()
    alice, bob = await _user(store), await _user(store, "bob")
    enrolment = await _register(store, alice)
    code = pyotp.TOTP(enrolment.secret).at(NOW)
    other_key = JoseSealer(os.urandom(32)).seal(b'{"kind":"totp-enrolment"}')
    unrelated = SEALER.seal(msgspec.json.encode({"user_id": alice.id, "secret": SECRET,
                                                 "exp": NOW + 60}))
    for bad in (_tampered(enrolment.enrollment), "garbage", other_key, unrelated):
        with pytest.raises(InvalidEnrollment):
            await _confirm(store, alice, bad, code)
    with pytest.raises(InvalidEnrollment, match="another user"):
        await _confirm(store, bob, enrolment.enrollment, code)
    later = NOW + ENROLMENT_SECONDS
    with pytest.raises(InvalidEnrollment, match="expired"):
        await _confirm(store, alice, enrolment.enrollment, pyotp.TOTP(enrolment.secret).at(later),
                       now=later, caller=_token(alice, auth_time=later))
    assert (await store.get_credentials(alice.id)).totp_secret is None
    assert (await store.get_credentials(bob.id)).totp_secret is None
    # None of those refusals used the code up.
    assert await _confirm(store, alice, enrolment.enrollment, code)


async def test_wrong_codes_at_confirmation_are_throttled_per_user() -> None:
    store = MemoryStore()
    user = await _user(store)
    enrolment = await _register(store, user)
    for _ in range(VERIFY_LIMIT):
        assert not await _confirm(store, user, enrolment.enrollment, "000000")
    with pytest.raises(TooManyCodes) as refused:
        await _confirm(store, user, enrolment.enrollment, pyotp.TOTP(enrolment.secret).at(NOW))
    assert 0 < refused.value.retry_after <= 900
    assert (await store.get_credentials(user.id)).totp_secret is None
    # Another user is not affected; the next window starts afresh.
    other = await _user(store, "bob")
    theirs = await _register(store, other)
    assert await _confirm(store, other, theirs.enrollment, pyotp.TOTP(theirs.secret).at(NOW))
    later = NOW + refused.value.retry_after
    fresh_token = _token(user, auth_time=later)
    fresh = await _register(store, user, now=later, caller=fresh_token)
    assert await _confirm(store, user, fresh.enrollment, pyotp.TOTP(fresh.secret).at(later),
                          now=later, caller=fresh_token)


async def test_reset_mfa_removes_the_factor_and_revokes_every_token_of_the_user() -> None:
    store = MemoryStore()
    alice, bob = await _user(store), await _user(store, "bob")
    await _with_factor(store, alice)
    await _with_factor(store, bob)
    tokens = {}
    for user in (alice, bob):
        access = _token(user, client_id=f"app-{user.user_name}")
        refresh = RefreshToken(
            token_hash=hash_token(f"rt_{user.id}"), access_token_hash=access.token_hash,
            exp=NOW + 7200, iat=NOW, grant_id=f"gr_{user.id}", client_id=access.client_id,
            scope=access.scope, sub=user.id)
        await store.save_tokens(access, refresh, NOW)
        tokens[user.user_name] = (access, refresh)
    done = await reset_mfa(store, user_name="ALICE", now=NOW + 1, sessions=no_sessions)
    assert done.user.id == alice.id and done.revoked >= 2
    credentials = await store.get_credentials(alice.id)
    assert (credentials.totp_secret, credentials.totp_confirmed) == (None, False)
    access, refresh = tokens["alice"]
    record = await store.get_access_token(access.token_hash, NOW + 1)
    assert record is not None and not record.is_active(NOW + 1)
    assert await store.get_refresh_token(refresh.token_hash, NOW + 1) is None
    # Bob keeps his factor and his tokens.
    assert await _seed(store, bob) == SECRET
    bob_access, bob_refresh = tokens["bob"]
    bob_record = await store.get_access_token(bob_access.token_hash, NOW + 1)
    assert bob_record is not None and bob_record.is_active(NOW + 1)
    assert await store.get_refresh_token(bob_refresh.token_hash, NOW + 1) is not None
    with pytest.raises(NotFound):
        await reset_mfa(store, user_name="nobody", now=NOW, sessions=no_sessions)

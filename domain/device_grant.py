"""The device authorization grant (RFC 8628) from request to tokens.

1. The device asks for a code (:func:`start_device_authorization`, section 3.1-3.2): it
   gets a secret *device code* and a short *user code* to show, with the address of the
   verification page.
2. The user, signed in on another screen, types the user code (:func:`look_up_user_code`,
   throttled: a user code has only ~34 bits) and approves or denies
   (:func:`approve_device_authorization`, :func:`deny_device_authorization`).
3. Meanwhile the device polls the token endpoint with the device code
   (:func:`redeem_device_code`, section 3.4-3.5) and, once approved, gets the tokens a
   code exchange would give, exactly once.

The device code is ``dc_<random>.<exp>.<tag>``: ``exp`` is its expiry and ``tag`` a digest
of its client's id, in clear but under the code's hash (the store keeps only the SHA-256
of the whole value, so an edited code is a code nobody issued). A poll can thus tell an
expired code from an unknown or spent one (``expired_token`` / ``invalid_grant``), and
refuse a code of another client without touching the record, so that a stranger holding
the code can neither slow the device down nor take its tokens.

Depends on ports only; failures are :class:`~domain.oauth.OAuthError`, store failures are
never caught (they fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import msgspec

from domain.client_directory import ClientDirectory
from domain.clients import GRANT_DEVICE_CODE, Client
from domain.device import (
    USER_CODE_ALPHABET,
    USER_CODE_LENGTH,
    DeviceAuthorization,
    DeviceDecision,
    PollApproved,
    PollDenied,
    PollExpired,
    PollPending,
    PollSlowDown,
    display_user_code,
    hash_user_code,
    normalize_user_code,
)
from domain.email_verification import email_claims
from domain.oauth import (
    BEARER,
    GRANT_ID_PREFIX,
    OAuthError,
    OAuthPorts,
    OAuthStore,
    TokenResponse,
    at_hash,
    groups_claim,
    new_user_tokens,
    parse_scope,
    refuse_service_scopes,
    require_active_user,
)
from domain.ratelimit import rate_key
from domain.scopes import EMAIL, GROUPS, OPENID
from domain.sessions import AMR_MFA, Session, SessionGrant, SessionPolicy, idle_expiry
from domain.tokens import hash_token
from ports.store import ConsentStore, DeviceStore, SessionStore

DEVICE_CODE_PREFIX = "dc_"
#: Seconds a device waits between polls (RFC 8628 section 3.2 ``interval``).
DEFAULT_INTERVAL = 5
#: RFC 8707 ``resource`` values kept per request, and their length.
MAX_RESOURCES = 10
MAX_RESOURCE_LENGTH = 2048
_MAX_DEVICE_CODE_LENGTH = 512
#: New user codes drawn when one is taken by a live authorization, before giving up.
_MAX_DRAWS = 8
_TAG_LENGTH = 16
_USER_CODE = re.compile(f"[{USER_CODE_ALPHABET}]{{{USER_CODE_LENGTH}}}")
_DEVICE_CODE = re.compile(rf"{DEVICE_CODE_PREFIX}[A-Za-z0-9_\-]+"
                          rf"\.(?P<exp>[0-9]{{1,12}})\.(?P<tag>[0-9a-f]{{{_TAG_LENGTH}}})")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# RFC 3986 section 2: the characters a URI may hold literally (no controls, spaces, quotes,
# angle brackets, backslashes or non-ASCII).
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


def new_user_code() -> str:
    """A user code: ``USER_CODE_LENGTH`` letters of ``USER_CODE_ALPHABET`` from
    :mod:`secrets` (20 ** 8, about 34 bits)."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


class DevicePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """``DEVICE_CODE_SECONDS``, the poll interval, the verification page's address, and the
    limits on wrong user codes: per address and in all (every address together), per
    ``failure_window_seconds`` (0 switches a limit off)."""

    verification_uri: str
    code_seconds: int = 600
    interval: int = DEFAULT_INTERVAL
    failures_per_address: int = 10
    failures: int = 1000
    failure_window_seconds: int = 900


class DeviceGrantStore(OAuthStore, DeviceStore, SessionStore, ConsentStore, Protocol):
    """The parts of the Store the device grant needs."""


@dataclass(frozen=True, slots=True)
class DevicePorts:
    """What the device grant's use cases depend on. ``store`` is ``oauth.store``, seen
    with the device, session and consent parts."""

    oauth: OAuthPorts
    store: DeviceGrantStore
    clients: ClientDirectory
    sessions: SessionPolicy
    policy: DevicePolicy
    draw_user_code: Callable[[], str] = new_user_code


class DeviceAuthorizationResponse(msgspec.Struct, frozen=True):
    """RFC 8628 section 3.2."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


def client_tag(client_id: str) -> str:
    """The digest of a client id carried by its device codes."""
    return hashlib.sha256(client_id.encode("utf-8", "surrogatepass")).hexdigest()[:_TAG_LENGTH]


def read_resources(values: Iterable[str]) -> tuple[str, ...]:
    """RFC 8707 ``resource`` values: absolute URIs without a fragment (section 2), kept in
    the order sent, duplicates dropped. Anything else is ``invalid_target``."""
    resources = tuple(dict.fromkeys(values))
    if len(resources) > MAX_RESOURCES:
        raise OAuthError("invalid_target", f"at most {MAX_RESOURCES} resource values")
    for resource in resources:
        if len(resource) > MAX_RESOURCE_LENGTH or not _URI_CHARACTERS.fullmatch(resource):
            raise OAuthError("invalid_target", "a resource must be an absolute URI")
        scheme, sep, _ = resource.partition(":")
        if not sep or not _SCHEME.fullmatch(scheme) or "#" in resource:
            raise OAuthError("invalid_target",
                             "a resource must be an absolute URI without a fragment")
        try:
            urlsplit(resource)
        except ValueError:  # e.g. an unbalanced IPv6 bracket
            raise OAuthError("invalid_target", "a resource must be an absolute URI") from None
    return resources


async def start_device_authorization(
    ports: DevicePorts, client: Client, *, scope: str | None, resources: tuple[str, ...]
) -> DeviceAuthorizationResponse:
    """A new device authorization for the (authenticated) client (section 3.1-3.2).

    The client must have the device grant (``unauthorized_client``). The scope is checked
    as an authorization request's: required, allowed for the client, user scopes only
    (``invalid_scope``). ``resources`` are kept as sent (:func:`read_resources`). A user
    code taken by a live authorization is drawn again.
    """
    if not client.allows_grant(GRANT_DEVICE_CODE):
        raise OAuthError("unauthorized_client", "the client may not use the device grant")
    requested = parse_scope(scope)
    if requested is None:
        raise OAuthError("invalid_scope", "a scope is required")
    if not client.allows_scopes(requested):
        raise OAuthError("invalid_scope", "the client may not request this scope")
    refuse_service_scopes(requested)
    policy = ports.policy
    now = ports.oauth.clock.now()
    exp = now + policy.code_seconds
    tag = client_tag(client.client_id)
    for _ in range(_MAX_DRAWS):
        device_code = f"{ports.oauth.token_generator.new(DEVICE_CODE_PREFIX)}.{exp}.{tag}"
        user_code = ports.draw_user_code()
        saved = await ports.store.save_device_authorization(DeviceAuthorization(
            device_code_hash=hash_token(device_code), user_code_hash=hash_user_code(user_code),
            client_id=client.client_id, scope=" ".join(requested), exp=exp,
            interval=policy.interval, created_at=now, resources=resources), now)
        if saved:
            break
    else:
        ports.oauth.events.emit("device_user_codes_exhausted", client_id=client.client_id)
        raise OAuthError("temporarily_unavailable", "no user code is free; try again")
    shown = display_user_code(user_code)
    ports.oauth.events.emit("device_authorization_started", client_id=client.client_id)
    return DeviceAuthorizationResponse(
        device_code=device_code,
        user_code=shown,
        verification_uri=policy.verification_uri,
        verification_uri_complete=f"{policy.verification_uri}?user_code={shown}",
        expires_in=policy.code_seconds,
        interval=policy.interval,
    )


# The verification page


class PendingRequest(msgspec.Struct, frozen=True):
    """A user code that names a live, undecided request of a client that may still use the
    grant: what the verification page asks the user about."""

    authorization: DeviceAuthorization
    client: Client


class UnknownUserCode(msgspec.Struct, frozen=True):
    """Wrong, expired, already decided, or its client gone: deliberately not saying which."""


class GuessesThrottled(msgspec.Struct, frozen=True):
    """Too many wrong user codes lately (from this address, or from everyone): no code is
    checked for ``retry_after`` seconds."""

    retry_after: int


class MfaRequired(msgspec.Struct, frozen=True):
    """The client accepts only a sign-in that proved a second factor; this one did not."""

    client: Client


def well_formed_user_code(text: str) -> str | None:
    """The user code ``text`` names (upper case, without dashes or spaces), or None when it
    cannot be one: too long, or a letter outside the alphabet."""
    if len(text) > 4 * USER_CODE_LENGTH:
        return None
    code = normalize_user_code(text)
    return code if _USER_CODE.fullmatch(code) else None


async def _pending(ports: DevicePorts, user_code_hash: str, now: int) -> PendingRequest | None:
    found = await ports.store.find_device_authorization(user_code_hash, now)
    if found is None or found.status != "pending":
        return None
    client = await ports.clients.find(found.client_id)
    if client is None or not client.allows_grant(GRANT_DEVICE_CODE):
        return None  # deleted, or its grant taken away, since the device asked
    return PendingRequest(found, client)


async def look_up_user_code(
    ports: DevicePorts, user_code: str, *, client_ip: str
) -> PendingRequest | UnknownUserCode | GuessesThrottled:
    """The request a typed user code names.

    Each attempt is counted before the lookup (per address, and once in a counter of every
    address), so that parallel guesses cannot all pass a limit, and given back when the
    code names a request: only wrong codes use up the allowance. Past a limit, nothing is
    looked up until the window ends. Text that cannot be a user code is unknown without a
    lookup, and is not counted (it cannot hit anything).
    """
    code = well_formed_user_code(user_code)
    if code is None:
        return UnknownUserCode()
    policy = ports.policy
    store = ports.store
    window = policy.failure_window_seconds
    now = ports.oauth.clock.now()
    counted: list[str] = []
    for scope, key, limit in (
            ("address", rate_key("device_code_address", client_ip), policy.failures_per_address),
            ("all", rate_key("device_code_all", "*"), policy.failures)):
        if limit <= 0:
            continue
        counted.append(key)
        if await store.hit(key, window, now) > limit:
            for taken in counted:
                await store.hit(taken, window, now, -1)
            retry_after = window - now % window
            ports.oauth.events.emit("device_user_code_throttled", client_ip=client_ip,
                                    scope=scope, limit=limit, retry_after=retry_after)
            return GuessesThrottled(retry_after)
    found = await _pending(ports, hash_user_code(code), now)
    if found is None:
        ports.oauth.events.emit("device_user_code_rejected", client_ip=client_ip)
        return UnknownUserCode()
    for key in counted:
        await store.hit(key, window, now, -1)
    return found


async def approve_device_authorization(
    ports: DevicePorts, user_code_hash: str, session: Session
) -> DeviceAuthorization | MfaRequired | UnknownUserCode:
    """The signed-in user approves the pending request: record who signed in and how
    (``user_id``, ``auth_time``, ``amr``, ``acr``, ``sid`` of ``session``), once.

    A client with ``require_mfa`` needs a session that proved a second factor. For a client
    that is not ``first_party``, the user's consent gets the request's scopes first, so
    that the device's next poll finds it.
    """
    now = ports.oauth.clock.now()
    pending = await _pending(ports, user_code_hash, now)
    if pending is None:
        return UnknownUserCode()
    client = pending.client
    if client.require_mfa and not session.mfa_verified:
        ports.oauth.events.emit("mfa_required", client_id=client.client_id,
                                user_id=session.user_id)
        return MfaRequired(client)
    if not client.first_party:
        await ports.store.grant_consent(session.user_id, client.client_id,
                                        tuple(pending.authorization.scope.split()), now)
    decided = await ports.store.decide_device_authorization(user_code_hash, DeviceDecision(
        status="approved", user_id=session.user_id, auth_time=session.auth_time,
        amr=session.amr, acr=session.acr, sid=session.sid), now)
    if decided is None:
        return UnknownUserCode()  # decided meanwhile (another tab), or just expired
    ports.oauth.events.emit("device_authorization_approved", client_id=client.client_id,
                            user_id=session.user_id)
    return decided


async def deny_device_authorization(
    ports: DevicePorts, user_code_hash: str, session: Session
) -> DeviceAuthorization | UnknownUserCode:
    """The signed-in user denies the pending request: the device's next poll is
    ``access_denied``."""
    now = ports.oauth.clock.now()
    decided = await ports.store.decide_device_authorization(user_code_hash, DeviceDecision(
        status="denied", user_id=session.user_id, sid=session.sid), now)
    if decided is None:
        return UnknownUserCode()
    ports.oauth.events.emit("device_authorization_denied", client_id=decided.client_id,
                            user_id=session.user_id)
    return decided


# The token endpoint


def _read_device_code(device_code: str, client: Client) -> int:
    """The expiry a device code carries; ``invalid_grant`` when it is not one of ours or
    names another client."""
    shape = (_DEVICE_CODE.fullmatch(device_code)
             if len(device_code) <= _MAX_DEVICE_CODE_LENGTH else None)
    if shape is None:
        raise OAuthError("invalid_grant", "the device code is invalid")
    if not hmac.compare_digest(shape["tag"], client_tag(client.client_id)):
        raise OAuthError("invalid_grant", "the device code was issued to another client")
    return int(shape["exp"])


async def redeem_device_code(
    ports: DevicePorts, client: Client, device_code: str
) -> TokenResponse:
    """One poll of the device (RFC 8628 section 3.4-3.5).

    Before the user decides: ``authorization_pending``, or ``slow_down`` for a poll sooner
    than the interval (which grows by 5 seconds each time). Then, once: ``access_denied``,
    or the tokens of a new grant, as a code exchange issues them: an access token, a
    refresh token with ``offline_access`` when the client may refresh, an ID token with
    ``openid`` (``sid``, ``auth_time``, ``acr``, ``amr`` of the approving session). An
    expired code is ``expired_token``; an unknown or spent one, or one of another client,
    ``invalid_grant``.

    The client's policy of now applies (scopes, ``require_mfa``), and the user must still be
    active (checked after the tokens are saved, as in the code exchange). The grant is
    recorded in the consent of a client that is not ``first_party`` (a consent withdrawn
    since the approval revokes it: ``access_denied``) and in the approving session while
    it is live, so that ending the session revokes it.
    """
    if not client.allows_grant(GRANT_DEVICE_CODE):
        raise OAuthError("unauthorized_client", "the client may not use the device grant")
    exp = _read_device_code(device_code, client)
    oauth = ports.oauth
    now = oauth.clock.now()
    poll = await ports.store.poll_device_authorization(hash_token(device_code), now)
    if isinstance(poll, PollPending):
        raise OAuthError("authorization_pending", "the user has not decided yet")
    if isinstance(poll, PollSlowDown):
        raise OAuthError("slow_down", f"polling too often; wait {poll.interval} seconds "
                         "between requests")
    if isinstance(poll, PollDenied):
        raise OAuthError("access_denied", "the user denied the request")
    if isinstance(poll, PollExpired):
        if exp <= now:
            raise OAuthError("expired_token", "the device code has expired; start again")
        raise OAuthError("invalid_grant", "the device code is invalid or was already used")
    assert isinstance(poll, PollApproved)
    return await _issue(ports, client, poll.authorization, now)


async def _issue(
    ports: DevicePorts, client: Client, approved: DeviceAuthorization, now: int
) -> TokenResponse:
    oauth = ports.oauth
    user_id, auth_time = approved.user_id, approved.auth_time
    if approved.client_id != client.client_id or user_id is None or auth_time is None:
        # Only a tag collision (64 bits) or a damaged record gets here.
        raise OAuthError("invalid_grant", "the device code is invalid")
    scopes = tuple(approved.scope.split())
    # The client's policy may have changed while the user decided: the policy of now holds.
    if not client.allows_scopes(scopes):
        raise OAuthError("invalid_grant", "the scope is no longer allowed for this client")
    refuse_service_scopes(scopes)
    mfa_verified = AMR_MFA in approved.amr
    if client.require_mfa and not mfa_verified:
        raise OAuthError("invalid_grant", "this client requires a two-factor sign-in")
    grant_id = oauth.token_generator.new(GRANT_ID_PREFIX)
    tokens = await new_user_tokens(oauth, client, scope=approved.scope, grant_id=grant_id,
                             user_id=user_id, mfa_verified=mfa_verified, auth_time=auth_time,
                             now=now, resources=approved.resources, acr=approved.acr)
    # Saved before anything that may revoke the grant (a deprovisioning, a withdrawn consent,
    # a logout), so that such a revocation, however it interleaves, reaches these tokens.
    await ports.store.save_tokens(tokens.access, tokens.refresh, now)
    user = await require_active_user(oauth, user_id, grant_id, client, now)
    if not client.first_party and not await ports.store.record_consent_grant(
            user_id, client.client_id, grant_id,
            auth_time + oauth.policy.refresh_max_lifetime_seconds, now):
        await ports.store.revoke_grant(grant_id, now)
        oauth.events.emit("device_grant_refused_no_consent", client_id=client.client_id)
        raise OAuthError("access_denied", "the user withdrew the consent for this client")
    await _record_in_session(ports, approved, client, grant_id, now)
    id_token: str | None = None
    if OPENID in scopes:
        claims = _id_token_claims(oauth, approved, user_id, auth_time, tokens.access_value, now)
        if EMAIL in scopes:
            claims.update(await email_claims(ports.store, user))
        if GROUPS in scopes:
            claims["groups"] = groups_claim(user)
        id_token = oauth.signer.sign(claims)
    oauth.events.emit("token_issued", grant_type=GRANT_DEVICE_CODE, client_id=client.client_id)
    return TokenResponse(
        access_token=tokens.access_value,
        token_type=BEARER,
        expires_in=tokens.access.exp - now,
        scope=approved.scope,
        refresh_token=tokens.refresh_value,
        id_token=id_token,
    )


async def _record_in_session(
    ports: DevicePorts, approved: DeviceAuthorization, client: Client, grant_id: str, now: int
) -> None:
    """Record the grant in the session that approved it, if that one is still live (the
    record names it by ``sid``; the store finds sessions by the cookie's hash)."""
    if approved.sid is None or approved.user_id is None:
        return
    for session in await ports.store.list_sessions(approved.user_id, now):
        if session.sid == approved.sid:
            await ports.store.add_session_grant(
                session.id_hash, SessionGrant(client.client_id, grant_id),
                idle_expiry(session, now, ports.sessions), now)
            return


def _id_token_claims(
    oauth: OAuthPorts, approved: DeviceAuthorization, user_id: str, auth_time: int,
    access_token: str, now: int,
) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": oauth.policy.issuer,
        "sub": user_id,
        "aud": approved.client_id,
        "exp": now + oauth.policy.id_token_seconds,
        "iat": now,
        "auth_time": auth_time,
        "amr": list(approved.amr),
        "at_hash": at_hash(access_token),
    }
    if approved.acr is not None:
        claims["acr"] = approved.acr
    if approved.sid is not None:
        claims["sid"] = approved.sid
    return claims

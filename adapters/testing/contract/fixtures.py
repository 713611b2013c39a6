"""What every part of the Store contract shares: :class:`StoreFixtures` (the ``store``
fixture an adapter overrides, ``now``, the strict-mode mark, the concurrency opt-out) and
the sample records the tests build (``_user``, ``_group``, ``_code``, ``_access``,
``_refresh``, ``_pair``).

The transfer part keeps fuller samples of its own (``transfer``: ids, versions and optional
attributes given), since its tests compare copied records exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
import pytest

from domain.entities import AccessToken, AuthorizationCode, Group, Member, RefreshToken, User
from domain.filters import AttrPath, Compare
from domain.tokens import hash_token
from ports.store import Store

HOUR = 3600
DAY = 86400
CONCURRENCY = 50


def _user(user_name: str, **fields: object) -> User:
    user = User(user_name=user_name, created=1_600_000_000, last_modified=1_600_000_000)
    return _with(user, **fields)


def _with(user: User, **changes: object) -> User:
    """``user`` with some attributes changed."""
    return msgspec.structs.replace(user, **changes)


def _group(display_name: str, *member_ids: str) -> Group:
    return Group(
        display_name=display_name,
        members=tuple(Member(value=member_id) for member_id in member_ids),
        created=1_600_000_000,
        last_modified=1_600_000_000,
    )


def _eq(attr: str, value: str) -> Compare:
    return Compare(AttrPath(attr), "eq", value)


def _code(name: str, exp: int, *, grant_id: str = "grant-code") -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=hash_token(name),
        client_id="client-a",
        redirect_uri="https://client.example/cb",
        scope="openid profile",
        exp=exp,
        grant_id=grant_id,
        user_id="user-1",
        nonce="n-0S6",
        pkce_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        pkce_method="S256",
        auth_time=exp - 600,
        mfa_verified=True,
    )


def _access(
    name: str,
    now: int,
    *,
    ttl: int = HOUR,
    grant_id: str | None = None,
    sub: str | None = None,
) -> AccessToken:
    return AccessToken(
        token_hash=hash_token(name),
        token_display=name[:7] + "...",
        active=True,
        scope="openid read",
        client_id="client-a",
        exp=now + ttl,
        iat=now,
        sub=sub,
        token_binding=None,
        mfa_verified=False,
        grant_id=grant_id,
        auth_time=now - 10 if sub else None,
    )


def _refresh(
    name: str,
    access: AccessToken,
    now: int,
    *,
    ttl: int = DAY,
    grant_id: str = "grant-1",
) -> RefreshToken:
    return RefreshToken(
        token_hash=hash_token(name),
        access_token_hash=access.token_hash,
        exp=now + ttl,
        iat=now,
        grant_id=grant_id,
        client_id=access.client_id,
        scope=access.scope,
        sub=access.sub,
        mfa_verified=access.mfa_verified,
        auth_time=access.auth_time,
    )


async def _pair(
    store: Store, n: int, now: int, *, grant_id: str = "grant-1", sub: str | None = "user-1"
) -> tuple[AccessToken, RefreshToken]:
    access = _access(f"tk_{grant_id}_{n}", now, grant_id=grant_id, sub=sub)
    refresh = _refresh(f"rt_{grant_id}_{n}", access, now, grant_id=grant_id)
    await store.save_tokens(access, refresh, now)
    return access, refresh


class StoreFixtures:
    """The base of every part's class, so that any mix of parts shares one ``store`` and ``now``.

    A test class overrides ``store`` with a ``@pytest_asyncio.fixture`` that yields a fresh,
    empty store and closes it afterwards; :class:`~adapters.testing.contract.store.StoreContract`
    says how, and what ``concurrency_skip_reason`` does.
    """

    concurrency_skip_reason: ClassVar[str | None] = None

    # Marks every inherited test, so the suite also runs under pytest-asyncio's strict mode.
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    if TYPE_CHECKING:
        # Any: an override of any shape (an async generator, with fixtures of its own as
        # parameters) type-checks under mypy --strict; the tests receive a Store.
        store: Any
    else:

        @pytest.fixture
        def store(self):
            """A fresh, empty store, closed after the test. Adapters override this fixture.

            Plain (not async) here, so that a subclass that forgets to override it gets
            this message in any pytest-asyncio mode.
            """
            raise NotImplementedError("override the `store` fixture to test an adapter")

    if TYPE_CHECKING:
        other_instance: Any
    else:

        @pytest.fixture
        def other_instance(self, store):
            """Another instance of the store over the same data, as a second server
            process would open it (its own connections, its own memory). By default the
            ``store`` itself, which is right for a store of one process; an adapter whose
            data is shared (a database, Redis) overrides it, so that the tests that say
            "across instances" race two of them for real."""
            return store

    @pytest.fixture
    def now(self) -> int:
        """The time every test passes to the store, in Unix seconds."""
        return 1_700_000_000

    def _require_concurrency(self) -> None:
        if self.concurrency_skip_reason is not None:
            pytest.skip(self.concurrency_skip_reason)

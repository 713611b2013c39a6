"""Test doubles and fixtures shared by the OAuth unit tests (tests/unit/test_oauth_*.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.jose_signer import JoseSigner
from adapters.memory.store import MemoryStore
from domain.clients import (
    AUTH_BASIC,
    AUTH_NONE,
    AUTH_POST,
    GRANT_TYPES,
    Client,
    ClientSecret,
)
from domain.entities import User
from domain.errors import NotFound
from domain.oauth import OAuthPorts, TokenPolicy, create_authorization_code, pkce_s256
from domain.resources import ResourceServers
from ports.security import SecretsTokenGenerator
from tests.doubles import FakeClock, RecordingEvents

ISSUER = "https://auth.example.test"
T0 = 1_700_000_000
SECRET = "s" * 40
REDIRECT = "https://app.example.test/callback"
VERIFIER = "v" * 43 + "-._~0123456789"
SCOPES = frozenset({"openid", "profile", "email", "offline_access", "read", "write"})

_SIGNER = JoseSigner.generated()


CONFIDENTIAL = Client(
    client_id="app",
    name="App",
    secrets=(ClientSecret.of(SECRET),),
    redirect_uris=(REDIRECT,),
    grant_types=frozenset(GRANT_TYPES),
    scopes=SCOPES,
    auth_methods=frozenset({AUTH_BASIC, AUTH_POST}),
)
OTHER = Client(
    client_id="other",
    name="Other",
    secrets=(ClientSecret.of(SECRET),),
    redirect_uris=(REDIRECT,),
    grant_types=frozenset(GRANT_TYPES),
    scopes=SCOPES,
    auth_methods=frozenset({AUTH_BASIC}),
)
#: A confidential client that opted out of PKCE (``require_pkce = false``).
LEGACY = Client(
    client_id="legacy",
    name="Legacy",
    secrets=(ClientSecret.of(SECRET),),
    redirect_uris=(REDIRECT,),
    grant_types=frozenset({"authorization_code", "refresh_token"}),
    scopes=SCOPES,
    auth_methods=frozenset({AUTH_BASIC}),
    require_pkce=False,
)
PUBLIC = Client(
    client_id="spa",
    name="SPA",
    redirect_uris=(REDIRECT,),
    grant_types=frozenset({"authorization_code", "refresh_token"}),
    scopes=SCOPES,
    auth_methods=frozenset({AUTH_NONE}),
)
SERVICE = Client(
    client_id="svc",
    name="Service",
    secrets=(ClientSecret.of(SECRET),),
    grant_types=frozenset({"client_credentials"}),
    scopes=frozenset({"read", "write", "openid"}),
    auth_methods=frozenset({AUTH_BASIC}),
)


@dataclass
class World:
    """A memory store, a fake clock and recorded events, wired into OAuthPorts."""

    store: Any = field(default_factory=MemoryStore)
    clock: FakeClock = field(default_factory=FakeClock)
    events: RecordingEvents = field(default_factory=RecordingEvents)
    policy: TokenPolicy = field(
        default_factory=lambda: TokenPolicy(
            issuer=ISSUER, access_token_seconds=3600, refresh_token_seconds=86400,
            code_seconds=600,
        )
    )
    #: The resource servers (RFC 8707) and DEFAULT_RESOURCE; none by default.
    resources: ResourceServers = field(default_factory=ResourceServers)

    @property
    def ports(self) -> OAuthPorts:
        return OAuthPorts(
            store=self.store, clock=self.clock, token_generator=SecretsTokenGenerator(),
            events=self.events, signer=_SIGNER, policy=self.policy, resources=self.resources,
        )

    @property
    def signer(self) -> JoseSigner:
        return _SIGNER

    async def ensure_user(self, user_id: str) -> None:
        """The user exists (code exchange and refresh refuse a missing one)."""
        try:
            await self.store.get_user(user_id)
        except NotFound:
            await self.store.create_user(User(id=user_id, user_name=user_id))

    async def code(
        self,
        client: Client = CONFIDENTIAL,
        *,
        scope: str = "openid offline_access read",
        user_id: str = "user-1",
        nonce: str | None = "n-1",
        verifier: str | None = VERIFIER,
        mfa_verified: bool = False,
        resources: tuple[str, ...] = (),
    ) -> str:
        await self.ensure_user(user_id)
        if not client.first_party:
            # As the sign-in does: a client that is not first-party needs the user's consent.
            await self.store.grant_consent(user_id, client.client_id, tuple(scope.split()),
                                           self.clock.now())
        return await create_authorization_code(
            self.ports, client=client, redirect_uri=REDIRECT, scope=scope, user_id=user_id,
            nonce=nonce, code_challenge=pkce_s256(verifier) if verifier else None,
            code_challenge_method="S256" if verifier else None, auth_time=self.clock.now() - 5,
            mfa_verified=mfa_verified, resources=resources,
        )

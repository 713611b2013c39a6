"""What request handlers are given: the ports, resolved once at start-up.

The container builds one ``Services`` in the lifespan. Handlers receive it through
Litestar's dependency injection, as the ``services`` parameter annotated
``ServicesDependency``. The three benchmarked OAuth endpoints (token, introspection,
revocation) read it from the application state with ``services_of(request)`` instead:
resolving a dependency per request cost them 3-5% (bench/inprocess.py) for a value that
never changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.di import NamedDependency

from domain.client_admin import ClientPorts
from domain.client_assertion import AssertionPorts
from domain.client_directory import ClientDirectory
from domain.device_grant import DevicePolicy, DevicePorts
from domain.dpop import DpopPorts
from domain.logout import LogoutPorts
from domain.oauth import OAuthPorts
from domain.sessions import SessionPolicy
from entrypoints.settings import Settings
from ports.clock import Clock
from ports.events import Events
from ports.mail import Mailer
from ports.otp import Totp
from ports.passkeys import PasskeyCeremonies
from ports.sealing import Sealer, SecretSealer
from ports.security import IdTokenSigner, PasswordHasher, TokenGenerator
from ports.store import Store

#: The device verification page (entrypoints.http.device): RFC 8628 ``verification_uri``.
DEVICE_PAGE_PATH = "/device"


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: Store
    clock: Clock
    token_generator: TokenGenerator
    password_hasher: PasswordHasher
    events: Events
    signer: IdTokenSigner
    #: Static clients first, then the store's (domain.client_directory).
    clients: ClientDirectory
    totp: Totp
    signin_sealer: Sealer
    #: Seals TOTP seeds at rest (the key is not in the store).
    secret_sealer: SecretSealer
    #: The OAuth use cases' ports, assembled once: the token endpoints are hot paths.
    oauth: OAuthPorts
    #: What private_key_jwt and client_secret_jwt need (domain.client_assertion).
    client_assertions: AssertionPorts
    #: The client use cases' ports (domain.client_admin): the admin API, registration.
    client_ports: ClientPorts
    #: ``SESSION_IDLE_SECONDS`` and ``SESSION_MAX_SECONDS`` (domain.sessions).
    session_policy: SessionPolicy
    #: Ending sessions: revocation and back-channel logout (domain.logout).
    logout: LogoutPorts
    #: DPoP proofs and nonces (domain.dpop).
    dpop: DpopPorts
    #: The HMAC key of the ``/account`` forms' CSRF tokens (entrypoints/http/account.py).
    account_form_key: bytes
    #: The WebAuthn ceremonies of passkeys (domain.passkeys), for ``EXTERNAL_BASE_URL``.
    passkeys: PasskeyCeremonies
    #: Mail to users (ports.mail), in the background; None without ``SMTP_URL``: then there
    #: is no password reset and no email verification.
    mailer: Mailer | None = None

    @property
    def device(self) -> DevicePorts:
        """The device grant's ports (domain.device_grant), made of the ones above (cheap:
        only the device endpoints ask)."""
        settings = self.settings
        return DevicePorts(
            oauth=self.oauth, store=self.store, clients=self.clients,
            sessions=self.session_policy,
            policy=DevicePolicy(
                verification_uri=f"{settings.external_base_url}{DEVICE_PAGE_PATH}",
                code_seconds=settings.device_code_seconds,
                failures_per_address=settings.rate_limit_device_code_failures_per_address,
                failures=settings.rate_limit_device_code_failures))


def services_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Services:
    """The services of the application serving ``connection`` (set by its lifespan)."""
    services: Services = connection.app.state.services
    return services


#: How a handler asks for the services (Litestar's name-based dependency injection).
ServicesDependency = NamedDependency[Services]

"""The Litestar application factory.

``create_app()`` reads the settings from the environment (uvicorn calls it with
``factory=True``); tests pass settings and, usually, a store:
``create_app(settings, store=MemoryStore())``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from dependency_injector import providers
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from adapters.backchannel_http import HttpLogoutSender
from adapters.smtp_mail import SmtpMailer
from domain.client_admin import ClientPorts
from domain.client_assertion import AssertionPolicy, AssertionPorts
from domain.client_directory import ClientDirectory
from domain.client_keys import ClientKeys
from domain.dpop import DpopPolicy, DpopPorts
from domain.errors import DomainError
from domain.logout import LogoutPorts
from domain.oauth import OAuthPorts, TokenPolicy
from domain.sessions import SessionPolicy
from entrypoints.clients import check_signing_algorithms
from entrypoints.container import Container, build_container, open_backend
from entrypoints.http.account import AccountController
from entrypoints.http.account_email import AccountEmailController
from entrypoints.http.account_passkeys import AccountPasskeysController
from entrypoints.http.account_security import AccountSecurityController
from entrypoints.http.admin import AdminController
from entrypoints.http.admin_accounts import AdminAccountsController
from entrypoints.http.admin_sessions import AdminSessionsController
from entrypoints.http.authorize import AuthorizeController, SigninController
from entrypoints.http.device import DEVICE_HANDLERS
from entrypoints.http.discovery import DiscoveryController
from entrypoints.http.errors import (
    domain_error_handler,
    http_error_handler,
    internal_error_handler,
)
from entrypoints.http.health import HealthController
from entrypoints.http.initial_access_tokens import create_initial_access_token
from entrypoints.http.logout import LogoutController
from entrypoints.http.mfa import MfaController
from entrypoints.http.oauth import OAUTH_HANDLERS
from entrypoints.http.password_reset import PasswordResetController
from entrypoints.http.registration import RegistrationController
from entrypoints.http.scim import scim_router
from entrypoints.http.scim_errors import scim_aware
from entrypoints.http.scim_extensions import scim_extensions_router
from entrypoints.http.services import Services
from entrypoints.http.static import passkeys_script
from entrypoints.http.userinfo import UserinfoController
from entrypoints.janitor import Janitor, janitor_running
from entrypoints.logging import configure_logging
from entrypoints.metrics import MetricsController
from entrypoints.middleware import instrument
from entrypoints.settings import Settings, load_settings
from ports.store import Store

VERSION = "0.1.0"
#: The HKDF label of the DPoP nonce key (every instance with the same signing key agrees).
DPOP_NONCE_LABEL = "auth-service dpop nonce v1"


def build_services(container: Container) -> Services:
    settings = container.settings()
    store = container.store()
    clock = container.clock()
    token_generator = container.token_generator()
    events = container.events()
    signer = container.signer()
    static_clients = container.clients()
    check_signing_algorithms(static_clients, signer.algorithms)
    secret_sealer = container.secret_sealer()
    policy = TokenPolicy(
        issuer=settings.issuer,
        access_token_seconds=settings.token_expiry_seconds,
        refresh_token_seconds=settings.refresh_token_expiry_seconds,
        refresh_max_lifetime_seconds=settings.refresh_token_max_lifetime_seconds,
        code_seconds=settings.auth_code_expiry_seconds,
    )
    clients = ClientDirectory(static_clients, store)
    codec = container.assertion_codec()
    client_assertions = AssertionPorts(
        clients=clients, store=store, codec=codec, sealer=secret_sealer,
        keys=ClientKeys(codec, container.outbound(), container.outbound_policy()),
        policy=AssertionPolicy(issuer=settings.issuer,
                               token_endpoint=f"{settings.external_base_url}/oauth/token"),
    )
    return Services(
        settings=settings,
        store=store,
        clock=clock,
        token_generator=token_generator,
        password_hasher=container.password_hasher(),
        events=events,
        signer=signer,
        clients=clients,
        totp=container.totp(),
        signin_sealer=container.signin_sealer(),
        secret_sealer=secret_sealer,
        oauth=OAuthPorts(store=store, clock=clock, token_generator=token_generator,
                         events=events, signer=signer, policy=policy,
                         clients=clients, resources=container.resource_servers()),
        client_assertions=client_assertions,
        client_ports=ClientPorts(store=store, static=static_clients, clock=clock,
                                 token_generator=token_generator, sealer=secret_sealer,
                                 events=events, check_keys=codec.key_set_problem,
                                 signing_algs=signer.algorithms),
        session_policy=SessionPolicy(idle_seconds=settings.session_idle_seconds,
                                     max_seconds=settings.session_max_seconds),
        logout=LogoutPorts(store=store, clients=clients, signer=signer,
                           sender=container.logout_sender(), events=events, clock=clock,
                           token_generator=token_generator, issuer=settings.issuer,
                           code_seconds=settings.auth_code_expiry_seconds),
        dpop=DpopPorts(store=store, codec=container.dpop_codec(),
                       nonce_key=signer.derive_secret(DPOP_NONCE_LABEL),
                       policy=DpopPolicy(require_nonce=settings.dpop_require_nonce)),
        account_form_key=container.account_form_key(),
        passkeys=container.passkeys(),
        mailer=container.mailer(),
    )


#: How long shutdown waits for back-channel logouts under way (then they are abandoned,
#: each logged): within the orchestrator's grace period, after uvicorn's 15 s of draining.
LOGOUT_DRAIN_SECONDS = 5.0


async def _drain_logouts(services: Services) -> None:
    sender = services.logout.sender
    if isinstance(sender, HttpLogoutSender):
        await sender.drain(LOGOUT_DRAIN_SECONDS)


#: How long shutdown waits for mail under way (then each message left is logged as
#: abandoned: the user asks again); after the logouts, within the same grace period.
MAIL_DRAIN_SECONDS = 5.0


async def _drain_mail(services: Services) -> None:
    if isinstance(services.mailer, SmtpMailer):
        await services.mailer.drain(MAIL_DRAIN_SECONDS)


def provide_services(state: State) -> Services:
    """The ``services`` dependency: built once by the lifespan, kept in the app state."""
    services: Services = state.services
    return services


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    container: Container | None = None,
) -> Litestar:
    settings = settings or load_settings()
    configure_logging(settings)
    container = container or build_container(settings)
    if store is not None:
        container.store.override(providers.Object(store))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        backend = await open_backend(container)
        try:
            services = build_services(container)
            app.state.services = services
            app.state.container = container
            janitor = Janitor(services.store, services.clock, services.events,
                              interval_seconds=settings.purge_interval_seconds)
            async with janitor_running(janitor):
                try:
                    yield
                finally:
                    await _drain_logouts(services)
                    await _drain_mail(services)
        finally:
            await backend.close()

    route_handlers: list[Any] = [HealthController, DiscoveryController, *OAUTH_HANDLERS,
                                 AuthorizeController, UserinfoController, MfaController,
                                 MetricsController, scim_router, scim_extensions_router,
                                 AdminController, AdminSessionsController,
                                 AdminAccountsController,
                                 RegistrationController,
                                 create_initial_access_token, LogoutController,
                                 SigninController, AccountController, AccountSecurityController,
                                 AccountEmailController, AccountPasskeysController,
                                 passkeys_script, PasswordResetController, *DEVICE_HANDLERS]
    app = Litestar(
        route_handlers=route_handlers,
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        lifespan=[lifespan],
        exception_handlers={
            DomainError: domain_error_handler,
            # Unknown paths and methods under /scim/v2 answer SCIM error resources.
            HTTPException: scim_aware(http_error_handler),
            Exception: internal_error_handler,
        },
        openapi_config=OpenAPIConfig(
            title="auth-service",
            version=VERSION,
            description="OAuth 2.1 / OpenID Connect authorization server with SCIM 2.0",
            # The document only, at /schema and /schema/openapi.json. Litestar's UI pages
            # (Swagger, ReDoc, ...) load unpinned JavaScript from CDNs, which must never run
            # on an authorization server's origin; point any OpenAPI viewer at the JSON.
            render_plugins=[JsonRenderPlugin()],
        ),
        # Logging is ours (entrypoints.logging): one format, request ids, redaction.
        logging_config=None,
        debug=False,
    )
    instrument(app, settings, container.metrics())
    return app

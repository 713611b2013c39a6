"""The dependency-injector containers.

``Backend`` opens the store of the configured backend, whichever it is: the built-in
``hybrid`` and ``sql`` and installed plugins are all ``auth_service.stores`` entry points,
opened by :func:`entrypoints.backends.open_store`. Only the chosen backend's module is
imported, so ``hybrid`` never builds a PostgreSQL pool and ``sql`` never connects to Redis.

``Container`` holds what the application needs. Its ``store`` is a ``Dependency``: the
lifespan fills it with the chosen backend's store, unless a test has already overridden it
(``container.store.override(providers.Object(MemoryStore()))``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from dependency_injector import containers, providers

from adapters.backchannel_http import HttpLogoutSender
from adapters.jose_assertions import JoseAssertionCodec
from adapters.jose_dpop import JoseDpopCodec
from adapters.outbound_http import HttpxJsonFetcher
from adapters.passwords import Argon2PasswordHasher
from adapters.totp import PyotpTotp
from adapters.webauthn_ceremonies import WebauthnCeremonies
from domain.outbound import OutboundPolicy
from entrypoints.backends import open_store
from entrypoints.clients import load_clients, load_resource_servers
from entrypoints.mail import load_mailer
from entrypoints.metrics import Metrics
from entrypoints.settings import Settings
from entrypoints.signing import (
    load_account_form_key,
    load_secret_sealer,
    load_signer,
    load_signin_sealer,
)
from entrypoints.telemetry import TelemetryEvents
from ports.clock import SystemClock
from ports.mail import Mailer
from ports.security import SecretsTokenGenerator
from ports.store import Store


async def _store(settings: Settings) -> AsyncIterator[Store]:
    store = await open_store(settings.store)
    try:
        yield store
    finally:
        await store.close()


def passkey_ceremonies(settings: Settings) -> WebauthnCeremonies:
    """The WebAuthn relying party of ``EXTERNAL_BASE_URL``: its host is the relying party id
    (browsers refuse an IP address there) and its origin the one origin accepted."""
    parts = urlsplit(settings.external_base_url)
    host = (parts.hostname or "").lower()
    origin = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    return WebauthnCeremonies(rp_id=host, rp_name=host, origin=origin)


class Backend(containers.DeclarativeContainer):
    """The configured backend's resources: its store, opened and migrated, closed on exit."""

    settings = providers.Dependency(instance_of=Settings)
    store = providers.Resource(_store, settings)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    store: providers.Dependency[Store] = providers.Dependency()
    clock = providers.Singleton(SystemClock)
    token_generator = providers.Singleton(SecretsTokenGenerator)
    password_hasher = providers.Singleton(Argon2PasswordHasher)
    metrics = providers.Singleton(Metrics, settings.provided.store_backend)
    events = providers.Singleton(TelemetryEvents, metrics)
    signer = providers.Singleton(load_signer, settings)
    totp = providers.Singleton(PyotpTotp)
    signin_sealer = providers.Singleton(load_signin_sealer, signer)
    account_form_key = providers.Singleton(load_account_form_key, signer)
    secret_sealer = providers.Singleton(load_secret_sealer, settings, signer)
    clients = providers.Singleton(load_clients, settings, secret_sealer)
    #: Static resource servers, then stored ones (looked up in the store on each use).
    resource_servers = providers.Singleton(load_resource_servers, settings, clients, store)
    #: Every URL the server calls obeys this policy (OUTBOUND_ALLOW_LOOPBACK).
    outbound_policy = providers.Singleton(
        OutboundPolicy, allow_loopback=settings.provided.outbound_allow_loopback)
    outbound = providers.Singleton(HttpxJsonFetcher, outbound_policy)
    #: Back-channel logout deliveries (in the background; adapters/backchannel_http.py).
    logout_sender = providers.Singleton(HttpLogoutSender, outbound_policy, events)
    #: Mail to users (ports.mail; entrypoints/mail.py), in the background; None without
    #: SMTP_URL. Tests override it with a double, or point SMTP_URL at tests/services/smtp.py.
    mailer: providers.Provider[Mailer | None] = providers.Singleton(
        load_mailer, settings, events, clock)
    assertion_codec = providers.Singleton(JoseAssertionCodec)
    #: The WebAuthn ceremonies of passkeys (ports.passkeys), for EXTERNAL_BASE_URL.
    passkeys = providers.Singleton(passkey_ceremonies, settings)
    dpop_codec = providers.Singleton(JoseDpopCodec)


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)


class OpenedBackend:
    """The backend container opened for this process; ``close()`` releases its resources."""

    def __init__(self, backend: containers.DeclarativeContainer | None) -> None:
        self._backend = backend

    async def close(self) -> None:
        if self._backend is not None:
            result: Any = self._backend.shutdown_resources()
            if result is not None:
                await result


async def open_backend(container: Container) -> OpenedBackend:
    """Open the configured backend and make it ``container.store`` (unless overridden)."""
    if container.store.overridden:
        return OpenedBackend(None)
    settings: Settings = container.settings()
    backend = Backend(settings=settings)
    init: Any = backend.init_resources()
    if init is not None:
        await init
    store = await backend.store()
    container.store.override(providers.Object(store))
    return OpenedBackend(backend)

"""What request handlers are given: the ports, resolved once at start-up.

Handlers take one ``services: Services`` dependency instead of resolving each port per
request; the container builds it once in the lifespan.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.clients import ClientRegistry
from domain.oauth import OAuthPorts
from entrypoints.settings import Settings
from ports.clock import Clock
from ports.events import Events
from ports.otp import Totp
from ports.sealing import Sealer
from ports.security import IdTokenSigner, PasswordHasher, TokenGenerator
from ports.store import Store


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: Store
    clock: Clock
    token_generator: TokenGenerator
    password_hasher: PasswordHasher
    events: Events
    signer: IdTokenSigner
    clients: ClientRegistry
    totp: Totp
    signin_sealer: Sealer
    #: The OAuth use cases' ports, assembled once: the token endpoints are hot paths.
    oauth: OAuthPorts

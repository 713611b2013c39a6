"""An app over a memory store with the service's own telemetry (no events override).

Shared by the operations e2e tests (metrics, logs, limits, hostile input). Its harness is
the sign-in flow's :class:`Harness`, so ``full_flow`` and friends drive it like a browser.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dependency_injector import providers
from litestar.testing import TestClient

from adapters.memory.store import MemoryStore
from entrypoints.app import create_app
from entrypoints.container import build_container
from entrypoints.settings import load_settings
from tests.e2e.signin_flow import (
    _CLIENTS_TOML,
    ISSUER,
    FakeClock,
    Harness,
    RecordingEvents,
    from_peer,
)

SERVICE_ID = "svc"
SERVICE_SECRET = "s" * 40
OTHER_ID = "other"
OTHER_SECRET = "o" * 40
CLIENT_CREDENTIALS = f"{SERVICE_ID}:{SERVICE_SECRET};{OTHER_ID}:{OTHER_SECRET}"


@functools.cache
def signing_key_file() -> str:
    """One RSA key for the whole test session: generating one per app costs about a second."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as handle:
        handle.write(pem)
    return handle.name


@contextmanager
def ops_app(
    tmp_path: Path, *, store: MemoryStore | None = None, clock: FakeClock | None = None,
    peer: str | None = None, **env: str,
) -> Iterator[Harness]:
    """The app with the flow's clients plus two ``CLIENT_CREDENTIALS`` clients; ``peer``
    puts it behind a proxy at that address (``signin_flow.from_peer``).

    ``events`` of the returned harness is unused: events go to the real telemetry adapter.
    """
    clients_file = tmp_path / "clients.toml"
    clients_file.write_text(_CLIENTS_TOML)
    settings = load_settings({
        "CLIENTS_FILE": str(clients_file), "EXTERNAL_BASE_URL": ISSUER,
        "CLIENT_CREDENTIALS": CLIENT_CREDENTIALS, "SIGNING_KEY_FILE": signing_key_file(), **env,
    })
    container = build_container(settings)
    clock = clock or FakeClock()
    container.clock.override(providers.Object(clock))
    store = store or MemoryStore()
    app = create_app(settings, store=store, container=container)
    if peer is not None:
        from_peer(app, peer)
    with TestClient(app, base_url=ISSUER) as client:
        yield Harness(client, store, clock, RecordingEvents())


def client_token(client: TestClient[Any], client_id: str = SERVICE_ID,
                 secret: str = SERVICE_SECRET) -> Any:
    """A client_credentials token response."""
    return client.post("/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(client_id, secret))


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a text exposition, 0 when absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        found = dict(
            part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part
        )
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(value)
    return 0.0

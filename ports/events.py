"""The events port: how use cases report what operators must see.

Security events (a refresh token reused, a code replayed, a sign-in locked out) and
outcomes worth counting (a token issued, a purge) go through ``Events.emit``. The default
adapter writes one log line per event; the telemetry adapter also counts them for
``/metrics``. Field values must never be secrets or raw tokens (use ``token_display``).
"""

from __future__ import annotations

import logging
from typing import Protocol

FieldValue = str | int | float | bool | None


class Events(Protocol):
    def emit(self, name: str, **fields: FieldValue) -> None:
        """Record one event. ``name`` is a fixed identifier such as ``refresh_token_reused``."""
        ...


class LoggingEvents:
    """One structured log line per event, on the ``auth_service.events`` logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("auth_service.events")

    def emit(self, name: str, **fields: FieldValue) -> None:
        self._log.info(name, extra={"event": name, **fields})

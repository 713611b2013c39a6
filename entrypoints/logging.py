"""Structured logs: one JSON object per line (or a readable console line on a TTY).

Every line written while a request is being served carries that request's id, read from a
context variable that the request-id middleware sets. Lines are scrubbed of anything that
looks like a bearer secret (``tk_``/``rt_``/``ac_`` values, ``pr_`` reset links,
``client_secret=...``) as a last line of defence: code must log ``token_display`` values
only, never the token.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

import msgspec

from entrypoints.settings import Settings

#: The id of the request being served by the current task, or None outside requests.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

#: What an incoming ``x-request-id`` may look like to be kept (else one is generated): short
#: and plain, so that it can be logged and echoed without escaping or header injection.
_REQUEST_ID_PATTERN = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")

_TOKEN_PATTERN = re.compile(r"\b((?:tk|rt|ac|pr)_[A-Za-z0-9_-]{4})[A-Za-z0-9_-]{8,}")
_SECRET_PARAM_PATTERN = re.compile(
    r"(?i)\b(client_secret|password|code_verifier|code|refresh_token|access_token|token"
    r"|otp|totp_code)=([^&\s\"']+)"
)
_BEARER_PATTERN = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is a field
# (but uvicorn's ``color_message``, the message again with terminal escapes).
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
) | {"message", "asctime", "request_id", "taskName", "color_message"}

_HANDLER_NAME = "auth-service"


# Generated ids: a random per-process prefix and a counter. Unique across processes and
# cheaper than reading the OS's randomness per request; ids need not be unguessable.
_ID_PREFIX = os.urandom(6).hex()
_id_counter = itertools.count(1)


def accept_request_id(raw: bytes | None) -> str:
    """The incoming ``x-request-id`` when it is sane, else a fresh id (24 hex digits)."""
    if raw is not None and _REQUEST_ID_PATTERN.fullmatch(raw):
        return raw.decode("ascii")
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFFFFFF:012x}"


def redact(text: str) -> str:
    """``text`` with token values cut to their display prefix and secrets replaced."""
    if "_" in text:
        text = _TOKEN_PATTERN.sub(r"\1...", text)
    if "=" in text:
        text = _SECRET_PARAM_PATTERN.sub(r"\1=[redacted]", text)
    return _BEARER_PATTERN.sub(r"\1 [redacted]", text)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (None outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}


def _scrub(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


_json = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, ``request_id``
    and the record's ``extra`` fields (an event's fields), then ``exception`` if any."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            body["request_id"] = request_id
        for key, value in _fields(record).items():
            body.setdefault(key, _scrub(value))
        if record.exc_info:
            body["exception"] = redact(self.formatException(record.exc_info))
        return _json.encode(body).decode("utf-8")


class ConsoleFormatter(logging.Formatter):
    """A readable line for a terminal: time, level, logger, message, ``key=value`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        parts = [f"{stamp} {record.levelname:<7} {record.name}: {redact(record.getMessage())}"]
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            parts.append(f"request_id={request_id}")
        parts.extend(f"{key}={_scrub(value)}" for key, value in _fields(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Install the service's handler on the root logger (replacing an earlier one).

    ``LOG_FORMAT=auto`` picks JSON unless the stream is a terminal. Idempotent, so that
    the application factory can call it in every worker process.
    """
    stream = stream if stream is not None else sys.stderr
    use_console = settings.log_format == "console" or (
        settings.log_format == "auto" and stream.isatty()
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(ConsoleFormatter() if use_console else JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # uvicorn's loggers propagate to the root once it is started without its own log config.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # Not its access logger: uvicorn writes an access line whenever that logger has a handler,
    # whatever `serve` passed as access_log, and propagating to the root gave it one: an INFO
    # line per request, about 12% of the server's CPU on introspection (py-spy under wrk).
    # Per-request lines come from MetricsMiddleware at DEBUG (auth_service.access).
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    return handler

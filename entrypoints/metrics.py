"""Prometheus metrics and the ``GET /metrics`` endpoint.

Each application owns its registry (several apps in one test process do not collide).
Label values are bounded: routes are path templates (``/scim/v2/Users/{id}``), never raw
paths; methods, grant types and results come from fixed sets, anything else reads
``other``. No token, client secret or user id is ever a label.

Store sizes: ``auth_store_records{part=...}`` has one series per field of
``StoreCounts`` (``StoreAdmin.counts``), so a part added to the port shows up as a new
``part`` value with no change here. They are read on a scrape, at most once every
``STORE_SIZES_REFRESH_SECONDS``; a store that fails or is slow keeps the last values (see
``auth_store_records_refreshed_timestamp_seconds``) and never fails the scrape.

Several worker processes (``auth-service serve --workers N``): when
``PROMETHEUS_MULTIPROC_DIR`` is set (the CLI sets it to a fresh directory for N > 1),
prometheus-client keeps values in per-process files there, and ``/metrics`` answers with
the sum over every worker, whichever worker serves the scrape.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import tempfile
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from domain.entities import PurgeCounts
from domain.errors import StoreUnavailable
from entrypoints.http.services import ServicesDependency
from ports.store import StoreAdmin

log = logging.getLogger("auth_service.metrics")

UNMATCHED_ROUTE = "<unmatched>"
OTHER = "other"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
GRANT_TYPES = frozenset({"authorization_code", "client_credentials", "refresh_token",
                         "urn:ietf:params:oauth:grant-type:device_code"})
#: The ``kind`` labels of purged records: every field of ``PurgeCounts``.
PURGE_KINDS = tuple(field.name for field in msgspec.structs.fields(PurgeCounts))
#: How often a scrape may read the store's sizes (a SCAN in Redis, COUNTs in PostgreSQL).
STORE_SIZES_REFRESH_SECONDS = 30
#: How long one reading may take before the scrape goes on with the last values.
STORE_SIZES_TIMEOUT_SECONDS = 5.0

# Latency buckets centred on what an authorization server answers in: most requests well
# under 10 ms, password checks (argon2id) around 50-200 ms.
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


def prepare_multiprocess() -> str:
    """Make sure ``PROMETHEUS_MULTIPROC_DIR`` names a directory, before workers start.

    An operator's directory is used as is (it must be emptied between runs, as
    prometheus-client requires); otherwise a fresh one is made and removed at exit.
    """
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        os.makedirs(configured, exist_ok=True)
        return configured
    directory = tempfile.mkdtemp(prefix="auth-service-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def bounded(value: object, allowed: frozenset[str]) -> str:
    """``value`` when it is one of ``allowed``, else ``other``: labels must stay a small set."""
    return value if isinstance(value, str) and value in allowed else OTHER


class StoreSizes:
    """The store's sizes (``StoreAdmin.counts``) as gauges, refreshed lazily by scrapes."""

    def __init__(self, registry: CollectorRegistry,
                 refresh_seconds: int = STORE_SIZES_REFRESH_SECONDS) -> None:
        self.refresh_seconds = refresh_seconds
        # "mostrecent": with several workers, the worker that read the store last is right.
        self.records = Gauge(
            "auth_store_records",
            "Records in the store, by part: every user, group and stored client; unexpired "
            "access tokens (revoked included), refresh tokens and codes", ["part"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.refreshed = Gauge(
            "auth_store_records_refreshed_timestamp_seconds",
            "Unix time the store sizes were last read successfully", registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._asked_at: int | None = None

    async def refresh(self, store: StoreAdmin, now: int) -> None:
        """Read the sizes if the last attempt is ``refresh_seconds`` old. Never raises."""
        asked = self._asked_at
        if asked is not None and 0 <= now - asked < self.refresh_seconds:
            return
        # Set before awaiting, so that concurrent scrapes do not all ask, and a failing
        # store is asked again only after the interval too.
        self._asked_at = now
        try:
            async with asyncio.timeout(STORE_SIZES_TIMEOUT_SECONDS):
                counts = await store.counts(now)
        except (StoreUnavailable, TimeoutError):
            log.warning("store sizes not refreshed: the store did not answer")
            return
        except Exception:
            log.exception("store sizes not refreshed")
            return
        for part, value in msgspec.structs.asdict(counts).items():
            self.records.labels(part).set(value)
        self.refreshed.set(now)


class Metrics:
    """Every metric the service exports, in one registry."""

    def __init__(self, backend: str, registry: CollectorRegistry | None = None) -> None:
        self.backend = backend
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "auth_http_requests", "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"], registry=r,
        )
        self.latency = Histogram(
            "auth_http_request_duration_seconds",
            "Time from request start to the last response byte, by method, route and status",
            ["method", "route", "status"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.tokens_issued = Counter(
            "auth_tokens_issued", "Access tokens issued, by grant type", ["grant_type"], registry=r,
        )
        self.tokens_introspected = Counter(
            "auth_tokens_introspected", "Introspection answers, by result (active or inactive)",
            ["result"], registry=r,
        )
        self.tokens_revoked = Counter(
            "auth_tokens_revoked", "Revocation requests, by result (revoked or unknown)",
            ["result"], registry=r,
        )
        self.refresh_reuse = Counter(
            "auth_refresh_token_reuse_detections",
            "Rotated refresh tokens presented again (their whole grant is revoked)", registry=r,
        )
        self.code_replays = Counter(
            "auth_authorization_code_replays",
            "Authorization codes presented after being redeemed", registry=r,
        )
        self.signin_failures = Counter(
            "auth_signin_failures",
            "Failed sign-ins, by reason (unknown_user, inactive, bad_password, bad_totp)",
            ["reason"], registry=r,
        )
        self.signin_lockouts = Counter(
            "auth_signin_lockouts", "Sign-ins refused because of too many failures", registry=r,
        )
        self.security_events = Counter(
            "auth_security_events", "Every event reported by the service, by name",
            ["event"], registry=r,
        )
        self.store_errors = Counter(
            "auth_store_errors", "Requests that failed because the store was unavailable",
            ["backend"], registry=r,
        )
        self.rate_limited = Counter(
            "auth_rate_limited", "Requests refused with 429, by rule", ["rule"], registry=r,
        )
        self.purge_runs = Counter(
            "auth_purge_runs", "Purges of expired data, by result (completed, skipped, failed)",
            ["result"], registry=r,
        )
        self.purged = Counter(
            "auth_purged_records", "Expired records removed by purges, by kind",
            ["kind"], registry=r,
        )
        self.backchannel_logouts = Counter(
            "auth_backchannel_logout",
            "Back-channel logout deliveries, by outcome (delivered, or why it failed: "
            "refused, rejected, unavailable, timeout, abandoned)", ["outcome"], registry=r,
        )
        self.store_sizes = StoreSizes(r)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (label children are cached)."""
        # Normalised before the cache lookup, so that invented methods cannot grow the cache.
        key = (method if method in _METHODS else OTHER, route, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (key[0], route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def store_error(self) -> None:
        self.store_errors.labels(self.backend).inc()

    def exposition(self) -> bytes:
        """The text exposition of every metric (summed over workers in multiprocess mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsController(Controller):
    path = "/metrics"
    tags = ["operations"]

    @get(
        "/",
        operation_id="metrics",
        summary="Prometheus metrics (text exposition format)",
        media_type=CONTENT_TYPE_LATEST,
    )
    async def metrics(
        self, request: Request[Any, Any, Any], services: ServicesDependency
    ) -> Response[bytes]:
        metrics: Metrics = request.app.state.metrics
        await metrics.store_sizes.refresh(services.store, services.clock.now())
        return Response(
            metrics.exposition(),
            media_type=CONTENT_TYPE_LATEST,
            headers={"Cache-Control": "no-store"},
        )

"""The ``Events`` adapter used by the service: counters for ``/metrics`` and log lines.

Security events (a refresh token reused, a code replayed, a sign-in failed or locked out)
each write one structured log line, at WARNING. Outcomes that happen on every hot-path
request (a token issued, introspected or revoked) are only counted, and logged at DEBUG
when that level is on: a log line per token request would cost more than issuing it.
"""

from __future__ import annotations

import logging
import re
from typing import Any, get_args

from adapters.backchannel_http import FAILURE_REASONS
from domain.passkeys import RefusalReason
from entrypoints.metrics import GRANT_TYPES, OTHER, PURGE_KINDS, Metrics, bounded
from ports.events import FieldValue

#: Logged at WARNING: security events, and purges that failed.
WARNING_EVENTS = frozenset({
    "purge_failed",
    "refresh_token_reused",
    "authorization_code_replayed",
    "signin_failed",
    "signin_locked",
    "totp_seed_unreadable",
    "backchannel_logout_failed",
    "session_revocation_failed",
    "device_user_code_rejected",
    "device_user_code_throttled",
    "mail_failed",
    "password_reset_throttled",
    "password_reset_link_refused",
    "passkey_sign_count_regressed",
})
#: Counted, but logged only at DEBUG: they happen on every hot-path request (or, for
#: ``purge_skipped``, on every instance but one at every interval).
QUIET_EVENTS = frozenset({"token_issued", "token_introspected", "token_revoked", "purge_skipped"})

_SIGNIN_FAILURE_REASONS = frozenset({
    "unknown_user", "inactive", "bad_password", "bad_totp", "bad_recovery_code",
    "bad_current_password", *(f"passkey_{r}" for r in get_args(RefusalReason)),
})
_BACKCHANNEL_FAILURES = frozenset(FAILURE_REASONS)
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")


class TelemetryEvents:
    """Counts every event in :class:`Metrics` and logs it on ``auth_service.events``."""

    def __init__(self, metrics: Metrics, logger: logging.Logger | None = None) -> None:
        self._metrics = metrics
        self._log = logger or logging.getLogger("auth_service.events")
        # Label children resolved once: ``labels()`` takes a lock and hashes on every call.
        self._issued = {grant: metrics.tokens_issued.labels(grant) for grant in GRANT_TYPES}
        self._issued_other = metrics.tokens_issued.labels(OTHER)
        self._introspected = (
            metrics.tokens_introspected.labels("inactive"),
            metrics.tokens_introspected.labels("active"),
        )
        self._by_name: dict[str, Any] = {}

    def emit(self, name: str, **fields: FieldValue) -> None:
        m = self._metrics
        if name == "token_issued":
            grant = fields.get("grant_type")
            self._issued.get(grant if isinstance(grant, str) else "", self._issued_other).inc()
        elif name == "token_introspected":
            self._introspected[1 if fields.get("active") else 0].inc()
        elif name == "token_revoked":
            result = "unknown" if fields.get("revoked") is False else "revoked"
            m.tokens_revoked.labels(result).inc()
        elif name == "refresh_token_reused":
            m.refresh_reuse.inc()
        elif name == "authorization_code_replayed":
            m.code_replays.inc()
        elif name == "signin_failed":
            m.signin_failures.labels(bounded(fields.get("reason"), _SIGNIN_FAILURE_REASONS)).inc()
        elif name == "signin_locked":
            m.signin_lockouts.inc()
        elif name == "backchannel_logout_delivered":
            m.backchannel_logouts.labels("delivered").inc()
        elif name == "backchannel_logout_failed":
            m.backchannel_logouts.labels(
                bounded(fields.get("reason"), _BACKCHANNEL_FAILURES)).inc()
        elif name == "purge_skipped":
            m.purge_runs.labels("skipped").inc()
        elif name == "purge_failed":
            m.purge_runs.labels("failed").inc()
        elif name == "purge_completed":
            m.purge_runs.labels("completed").inc()
            for kind in PURGE_KINDS:
                amount = fields.get(kind)
                if isinstance(amount, int) and amount > 0:
                    m.purged.labels(kind).inc(amount)
        counter = self._by_name.get(name)
        if counter is None:
            # Names are identifiers fixed in code; the pattern guards the label set anyway.
            label = name if _EVENT_NAME.fullmatch(name) else OTHER
            counter = m.security_events.labels(label)
            if label != OTHER:
                self._by_name[name] = counter
        counter.inc()

        if name in QUIET_EVENTS:
            if self._log.isEnabledFor(logging.DEBUG):
                self._log.debug(name, extra={"event": name, **fields})
            return
        level = logging.WARNING if name in WARNING_EVENTS else logging.INFO
        self._log.log(level, name, extra={"event": name, **fields})

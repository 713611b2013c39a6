"""Fixed-window rate limits over the store's shared counters.

Counting goes through ``EphemeralStore.hit``, so the limit is shared by every instance that
shares the store (Redis in ``hybrid``, PostgreSQL in ``sql``). One ``hit`` per rule per
request: the counter is incremented and read in the same call.
"""

from __future__ import annotations

import hashlib

import msgspec

from ports.store import EphemeralStore


class RateLimit(msgspec.Struct, frozen=True):
    """At most ``limit`` requests per ``window_seconds``; ``limit`` 0 switches it off."""

    limit: int
    window_seconds: int = 60

    @property
    def enabled(self) -> bool:
        return self.limit > 0


class Verdict(msgspec.Struct, frozen=True):
    """The outcome of one check. ``retry_after`` is the seconds until the window ends."""

    allowed: bool
    count: int
    retry_after: int


def rate_key(rule_name: str, subject: str) -> str:
    """The counter key for ``subject`` (a client id, an address) under ``rule_name``.

    Subjects come from requests, so they are hashed: keys stay short whatever was sent,
    and no client-chosen text reaches the store's key space.
    """
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"rl:{rule_name}:{digest}"


async def check_rate(store: EphemeralStore, key: str, rule: RateLimit, now: int) -> Verdict:
    """Count one request against ``rule`` and say whether it is allowed.

    Raises ``StoreUnavailable`` when the store fails; callers decide (the HTTP layer
    answers 503, so a broken limiter never lets traffic through unchecked).
    """
    count = await store.hit(key, rule.window_seconds, now)
    retry_after = rule.window_seconds - now % rule.window_seconds
    return Verdict(allowed=count <= rule.limit, count=count, retry_after=retry_after)

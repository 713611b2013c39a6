"""Text every store can keep: the rule for input strings, checked where input arrives.

PostgreSQL's ``text`` cannot hold U+0000, and UTF-8 (which every store writes) cannot hold
a lone surrogate (U+D800 to U+DFFF, which JSON's ``\\ud800`` escapes and URL decoding can
produce). Such input is refused as a client error at the edge (SCIM bodies, paths, filters,
OAuth parameters, the sign-in form), so it never reaches a store, where it would otherwise
fail as an error of the store (a 503) on one backend and be kept on another.
"""

from __future__ import annotations

import re

from domain.errors import InvalidValue

#: Matches a character no store can keep; hot paths call ``UNSTORABLE.search`` directly.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

def is_storable(value: str) -> bool:
    """False when ``value`` holds a character no store can keep (NUL, a lone surrogate)."""
    return UNSTORABLE.search(value) is None

def require_storable(value: str, what: str) -> str:
    """``value``, or ``InvalidValue`` naming ``what`` when a store could not keep it."""
    if UNSTORABLE.search(value) is not None:
        raise InvalidValue(f"{what} contains a character that is not allowed (NUL or a "
                           "lone surrogate)")
    return value


def duration_text(seconds: int) -> str:
    """``seconds`` in words for a message: ``30 minutes``, ``1 hour``, ``2 days``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"

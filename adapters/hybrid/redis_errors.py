"""What a failed Redis call is: the one definition behind the hybrid adapter's error
translation (:meth:`HybridConnection._ask <adapters.hybrid.connection.HybridConnection._ask>`,
the health probe, closing, best-effort clean-ups and the cluster's direct read).

redis-py raises its own errors (``RedisError``; ``RedisClusterException`` when a cluster
client reaches no node) and the socket's (``OSError``, ``asyncio.TimeoutError``). It also
lets ``AttributeError`` and ``TypeError`` out when a connection is torn down under a
command: a ``disconnect()`` that resumes after the connection was opened again clears the
new stream writer, and the next write reads ``'NoneType' object has no attribute
'writelines'`` (seen here while a cluster master failed over to its replica; upstream,
redis/redis-py#4287 and #3835). Those are failed calls too, and are treated as such -- but
only when the driver (or asyncio's transport under it) raised them: the same types raised
by this adapter's own code are bugs, and must not be mistaken for an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Final

from redis.exceptions import RedisClusterException, RedisError

REDIS_ERRORS: Final = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)
# What redis-py lets out of a connection torn down under it (see the module's docstring).
_LEAKED: Final = (AttributeError, TypeError)


def is_redis_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means a Redis call failed (and not that our code has a bug)."""
    return isinstance(exc, REDIS_ERRORS) or is_torn_connection(exc)


def is_torn_connection(exc: BaseException) -> bool:
    """Whether ``exc`` is what redis-py lets out of a connection torn down under a
    command (no error Redis or the socket reported: the client reconnects on next use)."""
    return isinstance(exc, _LEAKED) and _raised_in_driver(exc)


@contextlib.contextmanager
def redis_failures_suppressed() -> Iterator[None]:
    """For a best-effort Redis call: a failed call is ignored, every other error raised."""
    try:
        yield
    except Exception as exc:
        if not is_redis_failure(exc):
            raise


def _raised_in_driver(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback, leaving asyncio's own aside
    (a transport fails inside it), is redis-py's."""
    module = ""
    frames = exc.__traceback__
    while frames is not None:
        name = str(frames.tb_frame.f_globals.get("__name__", ""))
        if name != "asyncio" and not name.startswith("asyncio."):
            module = name
        frames = frames.tb_next
    return module == "redis" or module.startswith("redis.")

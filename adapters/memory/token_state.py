"""``MemoryTokenState``: codes, tokens, reuse markers and ephemeral state in process memory.

This is the token half of the ``memory`` adapter and the in-process part of ``hybrid``.
Single-use operations (``take_code``, ``take_refresh_token``, ``claim_once``) never await
between reading and writing, so on one event loop each of them is atomic.
"""

from __future__ import annotations

from adapters.memory.admin import TokenStateAdmin
from adapters.memory.codes import MemoryCodes
from adapters.memory.ephemeral import MemoryEphemeral
from adapters.memory.tokens import MemoryTokens


class MemoryTokenState(MemoryCodes, MemoryTokens, MemoryEphemeral, TokenStateAdmin):
    """:class:`ports.store.CodeStore`, ``TokenStore`` and ``EphemeralStore`` over one
    :class:`~adapters.memory.state.TokenState`, with its counts and purge."""

    __slots__ = ()

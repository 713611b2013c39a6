"""The back-channel logout port: telling clients that a session ended.

:mod:`domain.logout` builds and signs one logout token per client (OpenID Connect
Back-Channel Logout 1.0); a :class:`LogoutSender` delivers them. Delivery happens in the
background: ``send`` returns at once and never fails the caller's request, whatever the
clients answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec


class LogoutNotice(msgspec.Struct, frozen=True):
    """One logout token to POST (as ``logout_token``, form-encoded) to one client's
    ``backchannel_logout_uri``. ``sid`` and ``user_id`` are for the delivery's log line."""

    client_id: str
    uri: str
    logout_token: str
    sid: str
    user_id: str


class LogoutSender(Protocol):
    def send(self, notices: Sequence[LogoutNotice]) -> None:
        """Start delivering ``notices`` in the background (with a timeout and bounded
        retries, each outcome a security event) and return at once."""
        ...

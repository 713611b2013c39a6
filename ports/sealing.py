"""The sealing port: short-lived state a browser carries for us, unreadable and untamperable.

The sign-in transaction (the authorization request, which steps passed) travels between
pages in a cookie sealed with a key every instance shares, so any instance can continue a
sign-in that another one started. A pending TOTP enrolment is sealed the same way and
handed back by the client, so it never touches the stored factor.
"""

from __future__ import annotations

from typing import Protocol


class Sealer(Protocol):
    def seal(self, payload: bytes) -> str:
        """Encrypt and authenticate ``payload``; the result is URL- and cookie-safe."""
        ...

    def unseal(self, sealed: str) -> bytes | None:
        """The payload of a value made by ``seal`` with the same key; None when the value was
        altered, made with another key, or malformed."""
        ...

"""Short-lived state sealed in a cookie: the sign-in transaction, the logout confirmation,
the device verification form.

Each carries one msgspec Struct with an ``exp`` (Unix seconds), sealed (AES-GCM) with the
sign-in key derived from the signing key, so that any instance opens what another sealed
and the browser can neither read nor change it. The cookie is ``HttpOnly``,
``SameSite=Lax`` (a cross-site POST does not carry it, so a form's CSRF token sealed inside
cannot be replayed from another site) and, when the issuer is https, ``Secure`` with the
``__Host-`` prefix, host-only and at path ``/``; over http it is limited to its page.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

import msgspec
from litestar import Request
from litestar.datastructures import Cookie

from entrypoints.http.services import Services


class Expiring(Protocol):
    @property
    def exp(self) -> int: ...


S = TypeVar("S", bound=Expiring)


def is_secure(services: Services) -> bool:
    """Whether the issuer is https: cookies are then ``Secure`` and ``__Host-`` prefixed."""
    return services.settings.external_base_url.startswith("https://")


class SealedCookie(Generic[S]):
    """The cookie ``name`` holding one ``state_type`` for at most ``seconds``, at ``path``
    when the issuer is plain http (``/`` with the ``__Host-`` prefix otherwise)."""

    def __init__(self, name: str, state_type: type[S], *, seconds: int, path: str) -> None:
        self.name = name
        self.seconds = seconds
        self.path = path
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(state_type).decode

    def cookie_name(self, services: Services) -> str:
        return f"__Host-{self.name}" if is_secure(services) else self.name

    def cookie(self, services: Services, state: S | None, *, path: str | None = None) -> Cookie:
        """The cookie that carries ``state``, or (None) removes it; ``path`` overrides the
        plain-http path."""
        secure = is_secure(services)
        return Cookie(
            key=self.cookie_name(services),
            value=services.signin_sealer.seal(self._encode(state)) if state is not None else "",
            max_age=self.seconds if state is not None else 0,
            path="/" if secure else (path or self.path),
            httponly=True,
            secure=secure,
            samesite="lax",
        )

    def read(self, request: Request[Any, Any, Any], services: Services) -> S | None:
        """The state the browser sent, if it opens, decodes and has not expired."""
        sealed = request.cookies.get(self.cookie_name(services))
        payload = services.signin_sealer.unseal(sealed) if sealed else None
        if payload is None:
            return None
        try:
            state = self._decode(payload)
        except msgspec.ValidationError:
            return None
        return state if state.exp > services.clock.now() else None

"""Compact Redis encodings of token state.

Records are msgpack arrays (``array_like``), not maps: no field names are stored, and the
hash that names a record lives only in its key. Lua scripts read a few fields by position,
so the leading fields below are fixed: change them only together with ``scripts.py``.

An access token's value starts with one flag byte, ``1`` (active) or ``0`` (revoked), so a
revocation is ``SETRANGE key 0 0``: in place, and the key keeps its TTL.
"""

from __future__ import annotations

import msgspec

from domain.entities import AccessToken, AuthorizationCode, ConsumedCode, RefreshToken

ACTIVE = b"1"
REVOKED = b"0"


class CodeWire(msgspec.Struct, array_like=True, frozen=True, omit_defaults=True, gc=False):
    """An authorization code. Lua reads ``exp`` (1), ``grant_id`` (2), ``client_id`` (3)."""

    exp: int
    grant_id: str
    client_id: str
    redirect_uri: str
    scope: str
    user_id: str | None = None
    nonce: str | None = None
    pkce_challenge: str | None = None
    pkce_method: str | None = None
    auth_time: int | None = None
    mfa_verified: bool = False
    sid: str | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()


class AccessWire(msgspec.Struct, array_like=True, frozen=True, omit_defaults=True, gc=False):
    """An access token, after its flag byte. Lua reads ``exp`` (1)."""

    exp: int
    iat: int
    token_display: str
    scope: str
    client_id: str
    sub: str | None = None
    token_binding: str | None = None
    mfa_verified: bool = False
    grant_id: str | None = None
    auth_time: int | None = None
    audience: tuple[str, ...] = ()
    #: Appended last, so that records written before it decode.
    act: tuple[str, ...] = ()


class RefreshWire(msgspec.Struct, array_like=True, frozen=True, omit_defaults=True, gc=False):
    """A refresh token. Lua reads ``exp`` (1), ``access_token_hash`` (2), ``grant_id`` (3)
    and ``sub`` (7)."""

    exp: int
    access_token_hash: str
    grant_id: str
    iat: int
    client_id: str
    scope: str
    sub: str | None = None
    mfa_verified: bool = False
    auth_time: int | None = None
    #: Appended last (binding, then resources), so that records written before them decode.
    binding: str | None = None
    resources: tuple[str, ...] = ()


class TombstoneWire(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A consumed code's tombstone, as ``TAKE_CODE`` writes it."""

    exp: int
    grant_id: str
    client_id: str


class MarkerWire(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A rotated refresh token's reuse marker, as ``TAKE_REFRESH`` writes it."""

    exp: int
    grant_id: str


class Codec:
    """Encoders and pre-built decoders, shared by every call (building them is not free)."""

    __slots__ = ("_access", "_code", "_encode", "_marker", "_refresh", "_tombstone")

    def __init__(self) -> None:
        self._encode = msgspec.msgpack.Encoder().encode
        self._code = msgspec.msgpack.Decoder(CodeWire)
        self._access = msgspec.msgpack.Decoder(AccessWire)
        self._refresh = msgspec.msgpack.Decoder(RefreshWire)
        self._tombstone = msgspec.msgpack.Decoder(TombstoneWire)
        self._marker = msgspec.msgpack.Decoder(MarkerWire)

    def encode_code(self, code: AuthorizationCode) -> bytes:
        return self._encode(
            CodeWire(
                exp=code.exp,
                grant_id=code.grant_id,
                client_id=code.client_id,
                redirect_uri=code.redirect_uri,
                scope=code.scope,
                user_id=code.user_id,
                nonce=code.nonce,
                pkce_challenge=code.pkce_challenge,
                pkce_method=code.pkce_method,
                auth_time=code.auth_time,
                mfa_verified=code.mfa_verified,
                sid=code.sid,
                acr=code.acr,
                amr=code.amr,
                resources=code.resources,
            )
        )

    def decode_code(self, code_hash: str, data: bytes) -> AuthorizationCode:
        w = self._code.decode(data)
        return AuthorizationCode(
            code_hash=code_hash,
            client_id=w.client_id,
            redirect_uri=w.redirect_uri,
            scope=w.scope,
            exp=w.exp,
            grant_id=w.grant_id,
            user_id=w.user_id,
            nonce=w.nonce,
            pkce_challenge=w.pkce_challenge,
            pkce_method=w.pkce_method,
            auth_time=w.auth_time,
            mfa_verified=w.mfa_verified,
            sid=w.sid,
            acr=w.acr,
            amr=w.amr,
            resources=w.resources,
        )

    @staticmethod
    def consumed_code(code_hash: str, grant_id: bytes, client_id: bytes) -> ConsumedCode:
        return ConsumedCode(code_hash, grant_id.decode(), client_id.decode())

    def encode_access(self, token: AccessToken) -> bytes:
        body = self._encode(
            AccessWire(
                exp=token.exp,
                iat=token.iat,
                token_display=token.token_display,
                scope=token.scope,
                client_id=token.client_id,
                sub=token.sub,
                token_binding=token.token_binding,
                mfa_verified=token.mfa_verified,
                grant_id=token.grant_id,
                auth_time=token.auth_time,
                audience=token.audience,
                act=token.act,
            )
        )
        return (ACTIVE if token.active else REVOKED) + body

    def decode_access(self, token_hash: str, data: bytes) -> AccessToken:
        w = self._access.decode(memoryview(data)[1:])
        return AccessToken(
            token_hash=token_hash,
            token_display=w.token_display,
            active=data[:1] == ACTIVE,
            scope=w.scope,
            client_id=w.client_id,
            exp=w.exp,
            iat=w.iat,
            sub=w.sub,
            token_binding=w.token_binding,
            mfa_verified=w.mfa_verified,
            grant_id=w.grant_id,
            auth_time=w.auth_time,
            audience=w.audience,
            act=w.act,
        )

    def access_exp(self, data: bytes) -> int:
        return self._access.decode(memoryview(data)[1:]).exp

    def encode_refresh(self, token: RefreshToken) -> bytes:
        return self._encode(
            RefreshWire(
                exp=token.exp,
                access_token_hash=token.access_token_hash,
                grant_id=token.grant_id,
                iat=token.iat,
                client_id=token.client_id,
                scope=token.scope,
                sub=token.sub,
                mfa_verified=token.mfa_verified,
                auth_time=token.auth_time,
                binding=token.binding,
                resources=token.resources,
            )
        )

    def decode_refresh(self, token_hash: str, data: bytes) -> RefreshToken:
        w = self._refresh.decode(data)
        return RefreshToken(
            token_hash=token_hash,
            access_token_hash=w.access_token_hash,
            exp=w.exp,
            iat=w.iat,
            grant_id=w.grant_id,
            client_id=w.client_id,
            scope=w.scope,
            sub=w.sub,
            mfa_verified=w.mfa_verified,
            auth_time=w.auth_time,
            binding=w.binding,
            resources=w.resources,
        )

    def code_exp(self, data: bytes) -> int:
        return self._code.decode(data).exp

    def refresh_exp(self, data: bytes) -> int:
        return self._refresh.decode(data).exp

    def decode_tombstone(self, data: bytes) -> TombstoneWire:
        return self._tombstone.decode(data)

    def decode_marker(self, data: bytes) -> MarkerWire:
        return self._marker.decode(data)

"""The hybrid codec keeps a refresh token's DPoP binding, and reads records written before
it existed as unbound (the field is appended at the end of ``RefreshWire``)."""

from __future__ import annotations

import msgspec

from adapters.hybrid.codec import Codec
from domain.entities import RefreshToken


def test_binding_round_trips_and_old_records_read_as_unbound() -> None:
    codec = Codec()
    token = RefreshToken(token_hash="h", access_token_hash="ah", exp=100, iat=1, grant_id="g",
                         client_id="c", scope="read", sub="u", mfa_verified=True, auth_time=5,
                         binding="jkt:abc")
    assert codec.decode_refresh("h", codec.encode_refresh(token)) == token
    unbound = msgspec.structs.replace(token, binding=None)
    assert codec.decode_refresh("h", codec.encode_refresh(unbound)) == unbound
    # A record written before the field existed: nine elements.
    before = msgspec.msgpack.encode([100, "ah", "g", 1, "c", "read", "u", True, 5])
    assert codec.decode_refresh("h", before) == unbound

"""DPoP proof validation (domain.dpop with the joserfc codec): every check, one failure each."""

from __future__ import annotations

import base64
import json

import pytest
from joserfc import jws
from joserfc.jwk import OctKey

from adapters.jose_dpop import JoseDpopCodec
from adapters.memory.store import MemoryStore
from domain.clients import Client
from domain.dpop import (
    DpopPolicy,
    DpopPorts,
    DpopRefused,
    check_presentation,
    check_proof,
    current_nonce,
    token_request_binding,
)
from domain.token_binding import dpop_binding
from tests.doubles import T0
from tests.dpop_proofs import DpopKey

URL = "https://auth.example.test/oauth/token"
KEY = DpopKey("ES256")
NONCE_KEY = b"k" * 32


def _ports(store: MemoryStore | None = None, *, require_nonce: bool = False) -> DpopPorts:
    return DpopPorts(store=store or MemoryStore(), codec=JoseDpopCodec(), nonce_key=NONCE_KEY,
                     policy=DpopPolicy(require_nonce=require_nonce))


async def _refused(ports: DpopPorts, proof: str, *, now: int = T0, url: str = URL,
                   method: str = "POST", access_token: str | None = None) -> DpopRefused:
    with pytest.raises(DpopRefused) as raised:
        await check_proof(ports, proof, method=method, url=url, now=now,
                          access_token=access_token)
    return raised.value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "PS256"])
async def test_a_valid_proof_gives_the_thumbprint_of_its_key(alg: str) -> None:
    key = DpopKey(alg)
    jkt = await check_proof(_ports(), key.proof("POST", URL, iat=T0), method="POST", url=URL,
                            now=T0)
    assert jkt == key.jkt


async def test_htu_is_compared_without_query_fragment_case_or_default_port() -> None:
    proof = KEY.proof("POST", "HTTPS://Auth.Example.test:443/oauth/token?x=1#f", iat=T0)
    assert await check_proof(_ports(), proof, method="POST", url=URL, now=T0) == KEY.jkt


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", None])
async def test_typ_must_be_dpop_jwt(typ: str | None) -> None:
    proof = KEY.proof("POST", URL, iat=T0, header={"typ": typ} if typ else None,
                      typ=typ or "dpop+jwt")
    if typ is None:  # no typ at all
        head, body, _sig = proof.split(".")
        header = json.loads(base64.urlsafe_b64decode(head + "=="))
        del header["typ"]
        proof = jws.serialize_compact(header, base64.urlsafe_b64decode(body + "=="), KEY.key,
                                      algorithms=["ES256"])
    refused = await _refused(_ports(), proof)
    assert refused.error == "invalid_dpop_proof" and "typ" in refused.description


async def test_alg_none_is_refused() -> None:
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": KEY.public_jwk()}
    claims = {"jti": "j", "htm": "POST", "htu": URL, "iat": T0}
    proof = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."
    assert "alg" in (await _refused(_ports(), proof)).description


async def test_an_hmac_proof_is_refused_even_keyed_with_the_public_key() -> None:
    secret = OctKey.import_key(json.dumps(KEY.public_jwk()).encode())
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": KEY.public_jwk()}
    claims = {"jti": "j", "htm": "POST", "htu": URL, "iat": T0}
    proof = jws.serialize_compact(header, json.dumps(claims).encode(), secret,
                                  algorithms=["HS256"])
    assert "alg" in (await _refused(_ports(), proof)).description


async def test_a_private_key_in_the_header_is_refused() -> None:
    proof = KEY.proof("POST", URL, iat=T0, header={"jwk": dict(KEY.key.as_dict(private=True))})
    assert "public key" in (await _refused(_ports(), proof)).description


async def test_a_proof_without_jwk_is_refused() -> None:
    head, body, _ = KEY.proof("POST", URL, iat=T0).split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    del header["jwk"]
    proof = jws.serialize_compact(header, base64.urlsafe_b64decode(body + "=="), KEY.key,
                                  algorithms=["ES256"])
    assert "jwk" in (await _refused(_ports(), proof)).description


async def test_a_signature_by_another_key_is_refused() -> None:
    other = DpopKey("ES256")
    # The header names KEY's public key, the signature is other's.
    proof = other.proof("POST", URL, iat=T0, header={"jwk": KEY.public_jwk()})
    assert "signature" in (await _refused(_ports(), proof)).description


async def test_a_tampered_payload_is_refused() -> None:
    head, _, sig = KEY.proof("POST", URL, iat=T0).split(".")
    forged = _b64(json.dumps({"jti": "x", "htm": "POST", "htu": URL, "iat": T0}).encode())
    assert "signature" in (await _refused(_ports(), f"{head}.{forged}.{sig}")).description


async def test_a_key_on_the_wrong_curve_for_its_alg_is_refused() -> None:
    from joserfc.jwk import ECKey

    p384 = ECKey.generate_key("P-384", private=True, auto_kid=False)
    proof = KEY.proof("POST", URL, iat=T0, header={"jwk": dict(p384.as_dict(private=False))})
    assert "P-256" in (await _refused(_ports(), proof)).description


async def test_a_wrong_htm_is_refused() -> None:
    refused = await _refused(_ports(), KEY.proof("GET", URL, iat=T0))
    assert "htm" in refused.description


@pytest.mark.parametrize("htu", [
    "https://auth.example.test/oauth/userinfo", "http://auth.example.test/oauth/token",
    "https://evil.example.test/oauth/token", "https://auth.example.test:8443/oauth/token",
    "not a url",
])
async def test_a_wrong_htu_is_refused(htu: str) -> None:
    assert "htu" in (await _refused(_ports(), KEY.proof("POST", htu, iat=T0))).description


@pytest.mark.parametrize("iat", [T0 - 61, T0 + 61, T0 - 3600])
async def test_a_stale_or_future_iat_is_refused(iat: int) -> None:
    assert "iat" in (await _refused(_ports(), KEY.proof("POST", URL, iat=iat))).description


@pytest.mark.parametrize("iat", [T0 - 60, T0 + 60])
async def test_iat_within_sixty_seconds_either_way_is_accepted(iat: int) -> None:
    assert await check_proof(_ports(), KEY.proof("POST", URL, iat=iat), method="POST",
                             url=URL, now=T0) == KEY.jkt


async def test_a_missing_iat_or_jti_is_refused() -> None:
    assert "iat" in (await _refused(_ports(), KEY.proof("POST", URL, iat=T0,
                                                        drop=("iat",)))).description
    assert "jti" in (await _refused(_ports(), KEY.proof("POST", URL, iat=T0,
                                                        drop=("jti",)))).description


async def test_a_jti_is_single_use_across_instances_sharing_the_store() -> None:
    shared = MemoryStore()
    one, two = _ports(shared), _ports(shared)  # two instances, one store
    proof = KEY.proof("POST", URL, iat=T0)
    assert await check_proof(one, proof, method="POST", url=URL, now=T0) == KEY.jkt
    refused = await _refused(two, proof, now=T0 + 1)
    assert "already used" in refused.description
    # The same jti from another key is another proof.
    other = DpopKey("ES256")
    assert await check_proof(two, other.proof("POST", URL, iat=T0, jti=_jti(proof)),
                             method="POST", url=URL, now=T0 + 1) == other.jkt


def _jti(proof: str) -> str:
    jti: str = json.loads(base64.urlsafe_b64decode(proof.split(".")[1] + "=="))["jti"]
    return jti


async def test_ath_must_be_the_hash_of_the_presented_token() -> None:
    good = KEY.proof("GET", URL, iat=T0, access_token="tk_right")
    assert await check_proof(_ports(), good, method="GET", url=URL, now=T0,
                             access_token="tk_right") == KEY.jkt
    wrong = KEY.proof("GET", URL, iat=T0, access_token="tk_other")
    assert "ath" in (await _refused(_ports(), wrong, method="GET",
                                    access_token="tk_right")).description
    missing = KEY.proof("GET", URL, iat=T0)
    assert "ath" in (await _refused(_ports(), missing, method="GET",
                                    access_token="tk_right")).description


async def test_a_nonce_is_required_when_configured_and_ours_is_accepted() -> None:
    ports = _ports(require_nonce=True)
    refused = await _refused(ports, KEY.proof("POST", URL, iat=T0))
    assert refused.error == "use_dpop_nonce"
    invalid = await _refused(ports, KEY.proof("POST", URL, iat=T0, nonce="A" * 32))
    assert invalid.error == "use_dpop_nonce"
    nonce = current_nonce(ports, T0)
    assert await check_proof(ports, KEY.proof("POST", URL, iat=T0, nonce=nonce),
                             method="POST", url=URL, now=T0) == KEY.jkt


async def test_a_nonce_verifies_on_another_instance_and_expires_after_two_windows() -> None:
    one, two = _ports(require_nonce=True), _ports(require_nonce=True)
    nonce = current_nonce(one, T0)
    assert current_nonce(two, T0) == nonce  # stateless: the same key, the same window
    later = T0 + 300  # the next window: still accepted
    assert await check_proof(two, KEY.proof("POST", URL, iat=later, nonce=nonce),
                             method="POST", url=URL, now=later) == KEY.jkt
    too_late = T0 + 600 + (300 - T0 % 300)
    refused = await _refused(two, KEY.proof("POST", URL, iat=too_late, nonce=nonce),
                             now=too_late)
    assert refused.error == "use_dpop_nonce"
    other_key = DpopPorts(store=MemoryStore(), codec=JoseDpopCodec(), nonce_key=b"o" * 32,
                          policy=DpopPolicy())
    assert (await _refused(other_key, KEY.proof("POST", URL, iat=T0, nonce=nonce))
            ).error == "use_dpop_nonce"


async def test_garbage_and_oversized_proofs_are_refused() -> None:
    assert (await _refused(_ports(), "not.a.jwt")).error == "invalid_dpop_proof"
    assert "too long" in (await _refused(_ports(), "a" * 9000)).description


async def test_a_client_with_dpop_bound_access_tokens_must_send_a_proof() -> None:
    bound = Client(client_id="c", name="c", dpop_bound_access_tokens=True)
    with pytest.raises(DpopRefused) as raised:
        await token_request_binding(_ports(), bound, None, url=URL, now=T0)
    assert raised.value.error == "invalid_dpop_proof"
    plain = Client(client_id="p", name="p")
    assert await token_request_binding(_ports(), plain, None, url=URL, now=T0) is None
    binding = await token_request_binding(_ports(), bound, KEY.proof("POST", URL, iat=T0),
                                          url=URL, now=T0)
    assert binding == dpop_binding(KEY.jkt) == "jkt:" + KEY.jkt


async def test_a_bound_token_needs_the_dpop_scheme_and_a_proof_by_its_key() -> None:
    binding = dpop_binding(KEY.jkt)
    common = {"access_token": "tk_a", "method": "GET", "url": URL, "now": T0}
    with pytest.raises(DpopRefused) as as_bearer:
        await check_presentation(_ports(), binding=binding, scheme="Bearer", proof=None,
                                 **common)  # type: ignore[arg-type]
    assert as_bearer.value.error == "invalid_token"
    with pytest.raises(DpopRefused) as no_proof:
        await check_presentation(_ports(), binding=binding, scheme="DPoP", proof=None,
                                 **common)  # type: ignore[arg-type]
    assert no_proof.value.error == "invalid_dpop_proof"
    other = DpopKey("ES256").proof("GET", URL, iat=T0, access_token="tk_a")
    with pytest.raises(DpopRefused) as other_key:
        await check_presentation(_ports(), binding=binding, scheme="DPoP", proof=other,
                                 **common)  # type: ignore[arg-type]
    assert "another key" in other_key.value.description
    await check_presentation(_ports(), binding=binding, scheme="DPoP",
                             proof=KEY.proof("GET", URL, iat=T0, access_token="tk_a"),
                             **common)  # type: ignore[arg-type]
    # An unbound token goes as Bearer, never as DPoP; a certificate binding is no DPoP one.
    await check_presentation(_ports(), binding=None, scheme="Bearer", proof=None,
                             **common)  # type: ignore[arg-type]
    await check_presentation(_ports(), binding="x5t-value", scheme="Bearer", proof=None,
                             **common)  # type: ignore[arg-type]
    with pytest.raises(DpopRefused) as unbound:
        await check_presentation(_ports(), binding=None, scheme="DPoP", proof=None,
                                 **common)  # type: ignore[arg-type]
    assert unbound.value.error == "invalid_token"

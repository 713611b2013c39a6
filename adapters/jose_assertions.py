"""Client assertions with joserfc, as ``ports.client_assertion.AssertionCodec``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, KeySet, OctKey, OKPKey, RSAKey

from ports.client_assertion import InvalidAssertion, UnverifiedAssertion

# RFC 9864 deprecates the name "EdDSA" in favour of "Ed25519"; clients still send it, and
# which name a client uses changes nothing about what is verified.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

#: The key type each accepted algorithm needs: a key of another type never verifies it.
_KEY_TYPES: dict[str, type[Any]] = {
    "RS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey, "Ed25519": OKPKey,
    "HS256": OctKey, "HS384": OctKey, "HS512": OctKey,
}
#: More keys than any client publishes; bounds the work a hostile JWK Set causes.
MAX_KEYS = 20
_claims_decoder = msgspec.json.Decoder(dict[str, Any])


class JoseKeySet:
    """A client's public signature keys, by ``kid`` (``ports.client_assertion.PublicKeys``)."""

    __slots__ = ("keys",)

    def __init__(self, keys: Sequence[RSAKey | ECKey | OKPKey]) -> None:
        self.keys = tuple(keys)

    def has_kid(self, kid: str) -> bool:
        return any(key.kid == kid for key in self.keys)


class JoseAssertionCodec:
    def read(self, assertion: str) -> UnverifiedAssertion:
        try:
            compact = jws.extract_compact(assertion.encode("ascii"))
            claims = _claims_decoder.decode(compact.payload)
        except (JoseError, ValueError, UnicodeError, msgspec.DecodeError):
            raise InvalidAssertion("not a signed JWT (compact JWS of a JSON object)") from None
        header = compact.headers()
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or (kid is not None and not isinstance(kid, str)):
            raise InvalidAssertion("the JWT header needs alg (and kid, if any, as a string)")
        return UnverifiedAssertion(alg=alg, kid=kid, claims=claims)

    def public_keys(self, jwks: Mapping[str, Any]) -> JoseKeySet:
        members = jwks.get("keys")
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise InvalidAssertion("the JWK Set must be an object with a list of keys")
        keys: list[RSAKey | ECKey | OKPKey] = []
        for member in members[:MAX_KEYS]:
            if member.get("use", "sig") != "sig" or member.get("kty") not in ("RSA", "EC", "OKP"):
                continue  # encryption keys and symmetric keys never verify an assertion
            public = {name: value for name, value in member.items()
                      if name not in ("d", "p", "q", "dp", "dq", "qi", "oth", "k")}
            try:
                key = KeySet.import_key_set({"keys": [public]}).keys[0]
            except (JoseError, ValueError, TypeError):
                continue
            if isinstance(key, RSAKey | ECKey | OKPKey):
                keys.append(key)
        if not keys:
            raise InvalidAssertion("the JWK Set holds no usable public signature key")
        return JoseKeySet(keys)

    def key_set_problem(self, jwks: Mapping[str, Any]) -> str | None:
        """Why ``jwks`` holds no public signature key an assertion could be verified with
        (``domain.client_metadata.KeyCheck``); None when it holds one."""
        try:
            self.public_keys(jwks)
        except InvalidAssertion as exc:
            return str(exc)
        return None

    def verify_with_public_keys(
        self, assertion: str, header: UnverifiedAssertion, keys: object,
        algorithms: Sequence[str],
    ) -> None:
        assert isinstance(keys, JoseKeySet)  # made by public_keys
        alg, kid = _alg_and_kid(header, algorithms)
        wanted = _KEY_TYPES[alg]
        candidates = [key for key in keys.keys if isinstance(key, wanted)
                      and (kid is None or key.kid == kid)
                      and key.get("alg") in (None, alg)]
        if not candidates:
            raise InvalidAssertion(f"no key of the client can verify {alg}"
                                   + (f" with kid {kid!r}" if kid is not None else ""))
        self._verify(assertion, candidates, alg)

    def verify_with_secrets(
        self, assertion: str, header: UnverifiedAssertion, secrets: Sequence[str],
        algorithms: Sequence[str],
    ) -> None:
        alg, _kid = _alg_and_kid(header, algorithms)
        self._verify(assertion, [OctKey.import_key(secret) for secret in secrets], alg)

    @staticmethod
    def _verify(assertion: str, keys: Sequence[Any], alg: str) -> None:
        for key in keys:
            try:
                jws.deserialize_compact(assertion, key, algorithms=[alg])
            except (JoseError, ValueError):
                continue
            return
        raise InvalidAssertion("the signature does not verify")


def _alg_and_kid(header: UnverifiedAssertion, algorithms: Sequence[str]) -> tuple[str, str | None]:
    # joserfc checks the header's alg against the one list given again when verifying.
    if header.alg not in algorithms or header.alg not in _KEY_TYPES:
        raise InvalidAssertion(
            f"alg {header.alg!r} is not accepted here; use one of {', '.join(algorithms)}")
    return header.alg, header.kid

"""ID-token signing keys: loading, kid, rotation, and the sign-in sealing key derived from them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet, RSAKey

from adapters.jose_signer import JoseSigner
from adapters.sealed_state import JoseSealer
from entrypoints.settings import ConfigError, load_settings
from entrypoints.signing import load_signer, load_signin_sealer

OLD = RSAKey.generate_key(2048, private=True)
NEW = RSAKey.generate_key(2048, private=True)


def _pem(tmp_path: Path, name: str, key: RSAKey, private: bool = True) -> str:
    path = tmp_path / name
    path.write_bytes(key.as_pem(private=private))
    return str(path)


def test_kid_is_the_rfc7638_thumbprint_and_jwks_holds_public_keys_only() -> None:
    signer = JoseSigner([NEW])
    (published,) = signer.jwks()["keys"]
    assert published["kid"] == NEW.thumbprint() == signer.kid
    assert published["alg"] == "RS256" and published["use"] == "sig"
    assert "d" not in published and "p" not in published
    token = jwt.decode(signer.sign({"sub": "u"}), KeySet.import_key_set(signer.jwks()))
    assert token.header["kid"] == NEW.thumbprint() and token.claims == {"sub": "u"}


def test_rotation_newest_signs_both_published_old_tokens_still_verify(tmp_path: Path) -> None:
    before = load_signer(load_settings({"SIGNING_KEY_FILE": _pem(tmp_path, "old.pem", OLD)}))
    old_token = before.sign({"sub": "u"})
    files = f"{_pem(tmp_path, 'new.pem', NEW)}, {_pem(tmp_path, 'old.pem', OLD)}"
    after = load_signer(load_settings({"SIGNING_KEY_FILE": files}))
    jwks = after.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [NEW.thumbprint(), OLD.thumbprint()]
    keys = KeySet.import_key_set(jwks)
    assert jwt.decode(after.sign({"sub": "u"}), keys).header["kid"] == NEW.thumbprint()
    assert jwt.decode(old_token, keys).claims == {"sub": "u"}
    # Once the old key is dropped, its tokens stop verifying.
    only_new = KeySet.import_key_set(JoseSigner([NEW]).jwks())
    with pytest.raises(JoseError):
        jwt.decode(old_token, only_new)


def test_same_key_listed_twice_is_published_once() -> None:
    assert len(JoseSigner([NEW, NEW]).jwks()["keys"]) == 1


def test_the_same_key_file_gives_the_same_kid_on_every_instance(tmp_path: Path) -> None:
    settings = load_settings({"SIGNING_KEY_FILE": _pem(tmp_path, "k.pem", NEW)})
    assert load_signer(settings).kid == load_signer(settings).kid


def test_a_forged_signature_does_not_verify() -> None:
    token = JoseSigner([NEW]).sign({"sub": "u"})
    _, forged_payload, _ = JoseSigner([OLD]).sign({"sub": "admin"}).split(".")
    header, _, signature = token.split(".")
    with pytest.raises(BadSignatureError):
        jwt.decode(f"{header}.{forged_payload}.{signature}",
                   KeySet.import_key_set(JoseSigner([NEW]).jwks()))


def test_public_keys_and_short_keys_are_refused(tmp_path: Path) -> None:
    public = load_settings({"SIGNING_KEY_FILE": _pem(tmp_path, "pub.pem", NEW, private=False)})
    with pytest.raises(ConfigError) as raised:
        load_signer(public)
    assert raised.value.variable == "SIGNING_KEY_FILE"
    with pytest.raises(ValueError):
        JoseSigner([RSAKey.generate_key(1024, private=True, auto_kid=False)])


def test_a_file_that_is_no_key_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.pem"
    path.write_text("not a key")
    with pytest.raises(ConfigError):
        load_signer(load_settings({"SIGNING_KEY_FILE": str(path)}))


def test_without_a_key_file_one_is_generated_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="auth_service.signing"):
        signer = load_signer(load_settings({}))
    assert len(signer.jwks()["keys"]) == 1
    assert any("SIGNING_KEY_FILE" in r.getMessage() for r in caplog.records)


def test_derived_secrets_are_stable_per_key_and_distinct_per_label_and_key() -> None:
    assert JoseSigner([NEW]).derive_secret("a") == JoseSigner([NEW]).derive_secret("a")
    assert JoseSigner([NEW]).derive_secret("a") != JoseSigner([NEW]).derive_secret("b")
    assert JoseSigner([NEW]).derive_secret("a") != JoseSigner([OLD]).derive_secret("a")
    assert len(JoseSigner([NEW]).derive_secret("a")) == 32


def test_sealed_state_opens_only_with_the_same_signing_key() -> None:
    sealer = load_signin_sealer(JoseSigner([NEW, OLD]))
    sealed = sealer.seal(b'{"user":"u"}')
    assert b"user" not in sealed.encode()  # encrypted, not just signed
    assert load_signin_sealer(JoseSigner([NEW])).unseal(sealed) == b'{"user":"u"}'
    assert load_signin_sealer(JoseSigner([OLD])).unseal(sealed) is None
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    assert sealer.unseal(tampered) is None
    assert sealer.unseal("") is None and sealer.unseal("x" * 9000) is None


def test_a_sealer_needs_a_256_bit_key() -> None:
    with pytest.raises(ValueError):
        JoseSealer(b"short")


def test_verify_accepts_only_our_own_signatures_whatever_the_expiry() -> None:
    signer, stranger = JoseSigner.generated(), JoseSigner.generated()
    token = signer.sign({"sub": "u-1", "exp": 1}, typ="logout+jwt")
    assert signer.verify(token) == {"sub": "u-1", "exp": 1}
    assert stranger.verify(token) is None
    head, payload, signature = token.split(".")
    assert signer.verify(f"{head}.{payload}.{signature[::-1]}") is None
    assert signer.verify("not a token") is None
    assert signer.verify("x" * 20_000) is None

"""ID-token signing keys: loading, kid, rotation, and the sign-in sealing key derived from them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

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


# ES256 and EdDSA beside RS256 (issue 15)

EC = ECKey.generate_key("P-256", private=True, auto_kid=False)
ED = OKPKey.generate_key("Ed25519", private=True, auto_kid=False)


def test_mixed_keys_each_type_signs_for_its_alg_the_first_is_primary() -> None:
    rsa_old = RSAKey.generate_key(2048, private=True)
    signer = JoseSigner([EC, NEW, ED, rsa_old])
    assert signer.algorithm == "ES256" and signer.algorithms == ("ES256", "RS256", "EdDSA")
    assert signer.kid == EC.thumbprint()
    published = {k["kid"]: k["alg"] for k in signer.jwks()["keys"]}
    assert published == {EC.thumbprint(): "ES256", NEW.thumbprint(): "RS256",
                         ED.thumbprint(): "EdDSA", rsa_old.thumbprint(): "RS256"}
    keys = KeySet.import_key_set(signer.jwks())
    for alg, key in (("ES256", EC), ("RS256", NEW), ("EdDSA", ED)):
        token = signer.sign({"sub": "u"}, alg=alg)
        decoded = jwt.decode(token, keys, algorithms=[alg])
        assert decoded.header["kid"] == key.thumbprint() and decoded.header["alg"] == alg
        assert signer.verify(token) == {"sub": "u"}
    assert jwt.decode(signer.sign({"a": 1}), keys, algorithms=["ES256"]).header["alg"] == "ES256"
    with pytest.raises(ValueError):
        JoseSigner([NEW]).sign({"sub": "u"}, alg="ES256")


def test_a_token_from_an_older_key_of_any_type_still_verifies() -> None:
    old_ed = JoseSigner([ED]).sign({"sub": "u"})
    assert JoseSigner([EC, ED]).verify(old_ed) == {"sub": "u"}
    assert JoseSigner([EC]).verify(old_ed) is None


def test_verify_refuses_an_alg_other_than_the_kids_own() -> None:
    token = JoseSigner([EC]).sign({"sub": "u"})
    head, payload, signature = token.split(".")
    import base64
    import json

    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    header["alg"] = "RS256"
    forged = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    assert JoseSigner([EC]).verify(f"{forged}.{payload}.{signature}") is None


def test_unsupported_curves_are_refused() -> None:
    with pytest.raises(ValueError, match="P-256"):
        JoseSigner([ECKey.generate_key("P-384", private=True, auto_kid=False)])
    with pytest.raises(ValueError, match="Ed25519"):
        JoseSigner([OKPKey.generate_key("Ed448", private=True, auto_kid=False)])


def test_derived_secrets_of_an_rsa_key_are_unchanged_and_ec_okp_keys_derive_their_own(
    tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    # The derivation RSA key files have always had (the private exponent's bytes): the
    # sealed sign-ins and seeds of existing deployments keep opening.
    d = NEW.private_key.private_numbers().d  # type: ignore[union-attr]
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"auth-service",
                    info=b"label").derive(d.to_bytes((d.bit_length() + 7) // 8, "big"))
    assert JoseSigner([NEW]).derive_secret("label") == expected
    for key in (EC, ED):
        path = _pem(tmp_path, f"{key.thumbprint()}.pem", key)
        again = load_signer(load_settings({"SIGNING_KEY_FILE": path}))
        assert again.derive_secret("label") == JoseSigner([key]).derive_secret("label")
        assert len(again.derive_secret("label")) == 32
        assert again.derive_secret("label") != again.derive_secret("other")
    secrets = {JoseSigner([k]).derive_secret("label") for k in (NEW, OLD, EC, ED)}
    assert len(secrets) == 4
    assert JoseSigner([EC, NEW]).derive_secrets("l") == (
        JoseSigner([EC]).derive_secret("l"), JoseSigner([NEW]).derive_secret("l"))


def test_a_mixed_key_file_list_loads_every_type(tmp_path: Path) -> None:
    files = ",".join(_pem(tmp_path, f"{n}.pem", k) for n, k in (("ed", ED), ("ec", EC),
                                                                  ("rsa", NEW)))
    signer = load_signer(load_settings({"SIGNING_KEY_FILE": files}))
    assert signer.algorithms == ("EdDSA", "ES256", "RS256") and signer.kid == ED.thumbprint()


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_keys_generate_writes_a_private_pem_file_and_never_overwrites(
    tmp_path: Path, alg: str, capsys: pytest.CaptureFixture[str],
) -> None:
    import os
    import stat

    from entrypoints.cli import main

    path = tmp_path / "signing.pem"
    assert main(["keys", "generate", "--alg", alg, str(path)]) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    signer = load_signer(load_settings({"SIGNING_KEY_FILE": str(path)}))
    assert signer.algorithms == (alg,)
    assert signer.kid in capsys.readouterr().out
    before = path.read_bytes()
    assert main(["keys", "generate", "--alg", alg, str(path)]) == 1
    assert path.read_bytes() == before

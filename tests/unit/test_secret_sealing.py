"""Secrets at rest: the AES-GCM sealer (format, associated data, rotation), its key files,
``SEALING_KEY_FILE`` and the key derived from the signing keys when it is unset, and
``auth-service keys generate-sealing-key``."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pyotp
import pytest
from joserfc.jwk import RSAKey

from adapters.jose_signer import JoseSigner
from adapters.secret_sealing import AesGcmSecretSealer, key_id, new_key_text, parse_key_text
from entrypoints.cli import main
from entrypoints.settings import ConfigError, load_settings
from entrypoints.signing import load_secret_sealer
from ports.sealing import UnreadableSecret

OLD_KEY, NEW_KEY = os.urandom(32), os.urandom(32)
SEED = pyotp.random_base32()
AD = "totp:user-1"


def test_a_sealed_value_opens_only_with_its_key_and_associated_data() -> None:
    sealer = AesGcmSecretSealer([NEW_KEY])
    sealed = sealer.seal(SEED, AD)
    assert SEED not in sealed and sealed.startswith(f"sealed.v1.{key_id(NEW_KEY)}.")
    assert sealer.seal(SEED, AD) != sealed  # a fresh nonce each time
    opened = sealer.open(sealed, AD)
    assert (opened.plaintext, opened.stale) == (SEED, False)
    with pytest.raises(UnreadableSecret):
        sealer.open(sealed, "totp:user-2")
    with pytest.raises(UnreadableSecret, match="not configured"):
        AesGcmSecretSealer([OLD_KEY]).open(sealed, AD)


def test_altered_or_relabelled_values_do_not_open() -> None:
    sealer = AesGcmSecretSealer([NEW_KEY, OLD_KEY])
    sealed = sealer.seal(SEED, AD)
    prefix, version, kid, data = sealed.split(".")
    flipped = data[:5] + ("A" if data[5] != "A" else "B") + data[6:]
    relabelled_to_old = AesGcmSecretSealer([OLD_KEY, NEW_KEY]).seal(SEED, AD)
    _, _, old_kid, old_data = relabelled_to_old.split(".")
    for bad in (
        f"{prefix}.{version}.{kid}.{flipped}",
        f"{prefix}.{version}.{old_kid}.{data}",  # another configured key's id
        f"{prefix}.{version}.{kid}.{old_data}",
        f"{prefix}.v2.{kid}.{data}",
        f"{prefix}.{version}.{kid}.",
        f"{prefix}.{version}.{kid}.{data}.x",
        "sealed.v1.é.x",
    ):
        with pytest.raises(UnreadableSecret):
            sealer.open(bad, AD)


def test_rotation_the_first_key_seals_every_key_opens() -> None:
    before = AesGcmSecretSealer([OLD_KEY])
    during = AesGcmSecretSealer([NEW_KEY, OLD_KEY])
    old_value = before.seal(SEED, AD)
    opened = during.open(old_value, AD)
    assert (opened.plaintext, opened.stale) == (SEED, True)  # to be sealed again
    new_value = during.seal(SEED, AD)
    assert during.current_key_id == key_id(NEW_KEY) and key_id(NEW_KEY) in new_value
    assert AesGcmSecretSealer([NEW_KEY]).open(new_value, AD).plaintext == SEED
    with pytest.raises(UnreadableSecret):
        before.open(new_value, AD)


def test_clear_seeds_are_told_apart_from_sealed_values() -> None:
    sealer = AesGcmSecretSealer([NEW_KEY])
    assert sealer.is_sealed(sealer.seal(SEED, AD))
    assert not sealer.is_sealed(SEED) and not sealer.is_sealed("JBSWY3DPEHPK3PXP")


def test_key_files_hold_base64_of_32_bytes() -> None:
    key = os.urandom(32)
    for text in (base64.b64encode(key).decode() + "\n",
                 base64.urlsafe_b64encode(key).decode().rstrip("=")):
        assert parse_key_text(text) == key
    assert len(parse_key_text(new_key_text())) == 32
    for bad in ("", "not base64!", base64.b64encode(os.urandom(16)).decode(), key.hex()):
        with pytest.raises(ValueError):
            parse_key_text(bad)


def _key_file(tmp_path: Path, name: str, key: bytes) -> str:
    path = tmp_path / name
    path.write_text(base64.b64encode(key).decode() + "\n")
    return str(path)


def test_sealing_key_file_lists_keys_current_first(tmp_path: Path) -> None:
    new, old = _key_file(tmp_path, "new.key", NEW_KEY), _key_file(tmp_path, "old.key", OLD_KEY)
    settings = load_settings({"SEALING_KEY_FILE": f"{new}, {old}"})
    assert settings.sealing_key_files == (new, old)
    sealer = load_secret_sealer(settings, JoseSigner.generated())
    assert sealer.current_key_id == key_id(NEW_KEY)
    assert sealer.open(AesGcmSecretSealer([OLD_KEY]).seal(SEED, AD), AD).stale


def test_a_missing_or_malformed_sealing_key_file_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="SEALING_KEY_FILE: no such file"):
        load_settings({"SEALING_KEY_FILE": str(tmp_path / "absent.key")})
    bad = tmp_path / "bad.key"
    bad.write_text("0123")
    with pytest.raises(ConfigError, match="SEALING_KEY_FILE") as refused:
        load_secret_sealer(load_settings({"SEALING_KEY_FILE": str(bad)}), JoseSigner.generated())
    assert "generate-sealing-key" in str(refused.value)


def test_without_sealing_key_file_the_key_follows_the_signing_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    old, new = RSAKey.generate_key(2048, private=True), RSAKey.generate_key(2048, private=True)
    settings = load_settings({})
    with caplog.at_level(logging.WARNING, logger="auth_service.signing"):
        before = load_secret_sealer(settings, JoseSigner([old]))
    assert "SEALING_KEY_FILE is not set" in caplog.text
    sealed = before.seal(SEED, AD)
    # Another instance (or a restart) with the same signing key opens it ...
    assert load_secret_sealer(settings, JoseSigner([old])).open(sealed, AD).plaintext == SEED
    # ... and so does a signing-key rotation done as documented (new key first, old kept).
    assert load_secret_sealer(settings, JoseSigner([new, old])).open(sealed, AD).stale
    # The derived key is not the sign-in sealing key.
    assert before.current_key_id != key_id(JoseSigner([old]).derive_secret(
        "auth-service signin transaction v1"))


def test_generate_sealing_key_writes_a_private_file_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SEALING_KEY_FILE", raising=False)
    path = tmp_path / "sealing.key"
    assert main(["keys", "generate-sealing-key", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealer = AesGcmSecretSealer.from_key_files([str(path)])
    assert sealer.current_key_id in capsys.readouterr().out
    first = path.read_text()
    assert main(["keys", "generate-sealing-key", str(path)]) == 1
    assert path.read_text() == first
    assert "cannot create" in capsys.readouterr().err

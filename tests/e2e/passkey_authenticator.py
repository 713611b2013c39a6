"""A software WebAuthn authenticator, standing in for the browser and its passkey (the
e2e and unit tests of passkeys).

It answers the options a page carries as the browser's ``PublicKeyCredential.toJSON()``
would: registrations with attestation ``none`` and assertions signed with an ES256 key
(``cryptography``), with the authenticator data flags UP, UV, BE, BS and a signature
counter. Each knob a test needs to play an attacker or a broken device is a parameter:
another origin or relying party, no user verification, a counter that goes back, another
user handle.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    """One passkey the authenticator holds (a discoverable credential)."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def cose_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})


@dataclass
class SoftwareAuthenticator:
    """A platform authenticator at ``origin``. ``synced``: its passkeys are backup eligible
    and backed up (BE, BS: a synced passkey); ``counter``: it keeps a signature counter
    (else always 0, as most synced passkeys)."""

    origin: str = "http://auth.test"
    synced: bool = False
    counter: bool = True
    credentials: list[Credential] = field(default_factory=list)

    def _flags(self, *, user_verified: bool, attested: bool = False) -> int:
        flags = UP | (UV if user_verified else 0) | (AT if attested else 0)
        return flags | (BE | BS if self.synced else 0)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge,
                           "origin": origin or self.origin, "crossOrigin": False},
                          separators=(",", ":")).encode()

    def create(self, options: dict[str, Any] | str, *, origin: str | None = None,
               rp_id: str | None = None, user_verified: bool = True) -> str:
        """Make a passkey for ``options`` (``navigator.credentials.create``); the response
        JSON. ``origin``/``rp_id``: a page elsewhere (a phishing site)."""
        if isinstance(options, str):
            options = json.loads(options)
        excluded = {d["id"] for d in options.get("excludeCredentials", [])}
        assert not excluded & {c.id for c in self.credentials}, "InvalidStateError"
        rp = rp_id or options["rp"]["id"]
        credential = Credential(os.urandom(16), ec.generate_private_key(ec.SECP256R1()), rp,
                                unb64url(options["user"]["id"]))
        self.credentials.append(credential)
        auth_data = (hashlib.sha256(rp.encode()).digest()
                     + bytes([self._flags(user_verified=user_verified, attested=True)])
                     + struct.pack(">I", credential.sign_count)
                     + bytes(16)  # AAGUID: none
                     + struct.pack(">H", len(credential.credential_id))
                     + credential.credential_id + credential.cose_key())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return json.dumps({
            "id": credential.id, "rawId": credential.id, "type": "public-key",
            "authenticatorAttachment": "platform", "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data),
                         "attestationObject": b64url(attestation),
                         "transports": ["internal", "hybrid"]},
        })

    def get(self, options: dict[str, Any] | str, *, credential: Credential | None = None,
            origin: str | None = None, rp_id: str | None = None, user_verified: bool = True,
            sign_count: int | None = None, user_handle: bytes | None = None,
            omit_user_handle: bool = False) -> str:
        """Sign in for ``options`` (``navigator.credentials.get``); the response JSON.

        The credential is ``credential``, else the first one ``allowCredentials`` names,
        else (a discoverable request) the first one held for the relying party.
        ``sign_count`` forces the counter sent (a cloned authenticator); ``user_handle``
        sends another user's handle."""
        if isinstance(options, str):
            options = json.loads(options)
        rp = rp_id or options.get("rpId") or ""
        if credential is None:
            allowed = [d["id"] for d in options.get("allowCredentials", [])]
            held = [c for c in self.credentials if c.rp_id == rp or rp_id is not None]
            matching = [c for c in held if not allowed or c.id in allowed]
            assert matching, "NotAllowedError: no passkey for this request"
            credential = matching[0]
        if sign_count is None:
            if self.counter:
                credential.sign_count += 1
            sign_count = credential.sign_count
        auth_data = (hashlib.sha256(rp.encode()).digest()
                     + bytes([self._flags(user_verified=user_verified)])
                     + struct.pack(">I", sign_count))
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = credential.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
            "signature": b64url(signature)}
        if not omit_user_handle:
            response["userHandle"] = b64url(user_handle if user_handle is not None
                                            else credential.user_handle)
        return json.dumps({
            "id": credential.id, "rawId": credential.id, "type": "public-key",
            "authenticatorAttachment": "platform", "clientExtensionResults": {},
            "response": response,
        })

"""AEAD encryption of the users' Fathom and Loom API keys (`api_keys.encrypted_*`).

Format (documented in docs/api-key-encryption.md so another service can write it):

    f2l1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>

AES-256-GCM with a random 96-bit nonce. The associated data binds a ciphertext to its row's owner
and field (`f2l1|<user id>|<field>`), so a value copied to another user or field does not decrypt.
The key id (8 hex characters of a hash of the key) tells which key wrote a value, so previous keys
keep working for reading while `fathom2loom keys rotate` re-encrypts under the current one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fathom2loom.errors import UndecryptableKey

__all__ = [
    "VERSION",
    "Field",
    "KeyBox",
    "UndecryptableKey",
    "fingerprint",
    "fingerprint_secret",
    "key_id",
]

VERSION = "f2l1"
HOOK_VERSION = "f2l2"
NONCE_BYTES = 12
# The API keys (`api_keys`), and the Fathom webhook secrets (`auto_move`).
Field = Literal["encrypted_fathom", "encrypted_loom", "encrypted_secret"]


def key_id(key: bytes) -> str:
    """A short public name for an encryption key (not enough to learn anything about it)."""
    return hashlib.sha256(b"fathom2loom key id\0" + key).hexdigest()[:8]


def fingerprint_secret(key: bytes) -> bytes:
    """The server secret of fingerprints, derived from an encryption key (never equal to it)."""
    return hmac.new(key, b"fathom2loom fingerprints", hashlib.sha256).digest()


def fingerprint(secret: bytes, *parts: str, length: int = 24) -> str:
    """A one-way name for secret values (an API key, a key and a URL): an HMAC under a server
    secret, so that nobody without it can test a guessed key against a name seen in Redis or
    PocketBase."""
    return hmac.new(secret, "\0".join(parts).encode(), hashlib.sha256).hexdigest()[:length]


def _associated_data(user_id: str, field: str) -> bytes:
    return f"{VERSION}|{user_id}|{field}".encode()


def hook_key(key: bytes) -> tuple[str, bytes]:
    """(key id, AES key) of format f2l2, as pb_hooks/fathom2loom.js derives them."""
    hexed = key.hex()
    aes = hmac.new(hexed.encode(), b"fathom2loom f2l2", hashlib.sha256).hexdigest()[:32]
    kid = hashlib.sha256(f"fathom2loom f2l2 key id:{hexed}".encode()).hexdigest()[:8]
    return kid, aes.encode()


class KeyBox:
    """Encrypts under the current key; decrypts under the current or any previous key."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        for key in (current, *previous):
            if len(key) != 32:
                raise ValueError("encryption keys must be 32 bytes")
        self.current_id = key_id(current)
        self._current = AESGCM(current)
        self._by_id = {key_id(k): AESGCM(k) for k in (*previous, current)}
        self._hook_by_id = {kid: AESGCM(aes) for kid, aes in map(hook_key, (*previous, current))}
        self._fingerprints = [fingerprint_secret(k) for k in (current, *previous)]

    def __repr__(self) -> str:
        return f"KeyBox(current={self.current_id}, keys={len(self._by_id)})"

    def encrypt(self, plaintext: str, *, user_id: str, field: Field) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._current.encrypt(nonce, plaintext.encode(), _associated_data(user_id, field))
        payload = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{VERSION}.{self.current_id}.{payload}"

    def decrypt(self, token: str, *, user_id: str, field: Field) -> str:
        parts = token.strip().split(".")
        if len(parts) == 3 and parts[0] == HOOK_VERSION:
            return self._decrypt_hook(parts[1], parts[2], user_id, field)
        if len(parts) != 3 or parts[0] != VERSION:
            raise UndecryptableKey("it is not in the f2l1 or f2l2 format")
        _, kid, payload = parts
        aead = self._by_id.get(kid)
        if aead is None:
            raise UndecryptableKey("it was encrypted with a key this service does not have")
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        except (binascii.Error, ValueError) as exc:
            raise UndecryptableKey("its payload is not base64url") from exc
        if len(raw) < NONCE_BYTES + 16:
            raise UndecryptableKey("it is too short")
        try:
            plain = aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(user_id, field)
            )
        except InvalidTag as exc:
            raise UndecryptableKey(
                "it was altered, or it belongs to another user or field"
            ) from exc
        return plain.decode()

    def _decrypt_hook(self, kid: str, payload: str, user_id: str, field: Field) -> str:
        aead = self._hook_by_id.get(kid)
        if aead is None:
            raise UndecryptableKey("it was encrypted with a key this service does not have")
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UndecryptableKey("its payload is not base64") from exc
        if len(raw) < NONCE_BYTES + 16:
            raise UndecryptableKey("it is too short")
        try:
            sealed = json.loads(aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None))
        except InvalidTag as exc:
            raise UndecryptableKey("it was altered") from exc
        except ValueError:  # Not chained: the cause holds the decrypted text.
            raise UndecryptableKey("its plaintext is not the f2l2 JSON") from None
        if not isinstance(sealed, dict) or not isinstance(sealed.get("k"), str):
            raise UndecryptableKey("its plaintext is not the f2l2 JSON")
        if sealed.get("u") != user_id or sealed.get("f") != field:
            raise UndecryptableKey("it belongs to another user or field")
        return str(sealed["k"]).strip()

    def fingerprints(self, *parts: str, length: int = 24) -> list[str]:
        """`parts`' fingerprint under the current key, then under each previous one (so that a
        fingerprint made before a rotation is still recognised)."""
        return [fingerprint(secret, *parts, length=length) for secret in self._fingerprints]

    def needs_rotation(self, token: str) -> bool:
        """Anything but f2l1 under the current key: an older key, f2l2, or plain text."""
        parts = token.split(".")
        return not (len(parts) == 3 and parts[0] == VERSION and parts[1] == self.current_id)

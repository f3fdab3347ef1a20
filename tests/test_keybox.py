"""The API-key box: AES-256-GCM bound to its user and field, versioned, rotatable."""

from __future__ import annotations

import base64
import secrets

import pytest

from fathom2loom.keybox import KeyBox, UndecryptableKey, key_id

OLD, NEW = secrets.token_bytes(32), secrets.token_bytes(32)


def test_round_trip_and_format() -> None:
    box = KeyBox(NEW)
    token = box.encrypt("fathom-secret", user_id="u1", field="encrypted_fathom")
    version, kid, payload = token.split(".")
    assert (version, kid) == ("f2l1", key_id(NEW))
    assert "fathom-secret" not in token and "=" not in payload
    assert box.decrypt(token, user_id="u1", field="encrypted_fathom") == "fathom-secret"
    # A fresh nonce every time
    assert token != box.encrypt("fathom-secret", user_id="u1", field="encrypted_fathom")


@pytest.mark.parametrize(
    ("user_id", "field"), [("u2", "encrypted_fathom"), ("u1", "encrypted_loom")]
)
def test_a_value_moved_to_another_user_or_field_does_not_decrypt(user_id: str, field: str) -> None:
    box = KeyBox(NEW)
    token = box.encrypt("k", user_id="u1", field="encrypted_fathom")
    with pytest.raises(UndecryptableKey, match="another user or field"):
        box.decrypt(token, user_id=user_id, field=field)  # type: ignore[arg-type]


def test_tampering_and_wrong_keys_are_detected() -> None:
    box = KeyBox(NEW)
    token = box.encrypt("k", user_id="u1", field="encrypted_loom")
    version, kid, payload = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[-1] ^= 1
    tampered = f"{version}.{kid}." + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(UndecryptableKey, match="altered"):
        box.decrypt(tampered, user_id="u1", field="encrypted_loom")
    with pytest.raises(UndecryptableKey, match="key this service does not have"):
        KeyBox(OLD).decrypt(token, user_id="u1", field="encrypted_loom")
    for junk in ("plaintext-key", "f2l2.abcd1234.xx", f"f2l1.{kid}.!!!"):
        with pytest.raises(UndecryptableKey):
            box.decrypt(junk, user_id="u1", field="encrypted_loom")


def test_previous_keys_read_and_rotation_is_detected() -> None:
    old_token = KeyBox(OLD).encrypt("k", user_id="u1", field="encrypted_fathom")
    rotated = KeyBox(NEW, previous=[OLD])
    assert rotated.decrypt(old_token, user_id="u1", field="encrypted_fathom") == "k"
    assert rotated.needs_rotation(old_token)
    assert not rotated.needs_rotation(rotated.encrypt("k", user_id="u1", field="encrypted_fathom"))
    assert OLD.hex() not in repr(rotated) and NEW.hex() not in repr(rotated)

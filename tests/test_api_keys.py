"""Storing keys and rotating the encryption key, against a real PocketBase and the CLI."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from fathom2loom.api_keys import rotate_keys, store_keys
from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, ENCRYPTION_KEY, UserSession

MakeUser = Callable[[str], UserSession]


def test_rotation_reencrypts_everything_once(pb: PocketBase, make_user: MakeUser) -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    users = [make_user(f"rot{n}") for n in range(3)]
    for user in users:
        store_keys(pb, KeyBox(old), user.id, fathom=f"f-{user.id}", loom=f"l-{user.id}")
    box = KeyBox(new, previous=[old])
    report = rotate_keys(pb, box)
    assert (report.rows, report.reencrypted, report.undecryptable) == (3, 6, [])
    # Readable with the new key alone now, and a second run changes nothing
    only_new = KeyBox(new)
    for row in pb.list_all("api_keys"):
        uid = row["user_id"]
        assert only_new.decrypt(row["encrypted_fathom"], user_id=uid, field="encrypted_fathom") == (
            f"f-{uid}"
        )
    assert rotate_keys(pb, box).reencrypted == 0


def test_cli_stores_keys_without_taking_them_as_arguments(
    pb: PocketBase, make_user: MakeUser, settings: Settings, tmp_path: Path
) -> None:
    user = make_user("cli")
    env = {
        "REDIS_URL": settings.redis_url,
        "PATH": os.environ["PATH"],
        "PB_URL": settings.pb_url,
        "PB_ADMIN_EMAIL": ADMIN_EMAIL,
        "PB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PB_ENCRYPTION_KEY": ENCRYPTION_KEY,
    }
    done = subprocess.run(
        [sys.executable, "-m", "fathom2loom.cli", "keys", "set", user.email],
        input="fathom-from-stdin\nloom-from-stdin\n",
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "from-stdin" not in done.stdout + done.stderr
    row = pb.first("api_keys", filter=f'user_id = "{user.id}"')
    assert row is not None and row["encrypted_fathom"].startswith("f2l1.")
    box = KeyBox(bytes.fromhex(ENCRYPTION_KEY))
    assert box.decrypt(row["encrypted_loom"], user_id=user.id, field="encrypted_loom") == (
        "loom-from-stdin"
    )

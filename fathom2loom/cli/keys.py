"""`fathom2loom keys`: store a user's keys encrypted; re-encrypt them all after a key rotation."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from fathom2loom.api_keys import rotate_keys, store_keys
from fathom2loom.cli.common import load, user
from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import PocketBase

__all__ = ["register"]


def _read_key(name: str) -> str | None:
    """From $<NAME>_API_KEY, else a hidden prompt, else a line of stdin; never from argv."""
    env = os.environ.get(f"{name.upper()}_API_KEY")
    if env:
        return env
    if sys.stdin.isatty():
        return getpass.getpass(f"{name} API key (empty keeps the stored one): ") or None
    return sys.stdin.readline().strip() or None


def _box_and_pb() -> tuple[KeyBox, PocketBase]:
    settings = load()
    box = KeyBox(settings.encryption_key, settings.previous_encryption_keys)
    return box, PocketBase.from_settings(settings)


def _set(args: argparse.Namespace) -> int:
    box, pb = _box_and_pb()
    with pb:
        found = user(pb, args.user)
        store_keys(pb, box, found["id"], fathom=_read_key("Fathom"), loom=_read_key("Loom"))
    who = found.get("email") or found["id"]
    print(f"stored the keys of {who}, encrypted with key {box.current_id}")
    return 0


def _rotate(_args: argparse.Namespace) -> int:
    box, pb = _box_and_pb()
    with pb:
        report = rotate_keys(pb, box)
    print(report)
    return 1 if report.undecryptable else 0


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="users' Fathom and Loom API keys").add_subparsers(
        dest="keys_command", required=True
    )
    key_set = keys.add_parser(
        "set",
        help="store a user's keys encrypted (read from FATHOM_API_KEY/LOOM_API_KEY, a prompt,"
        " or two lines of stdin)",
        epilog="example: FATHOM_API_KEY=... LOOM_API_KEY=... fathom2loom keys set ann@example.com",
    )
    key_set.add_argument("user", help="the user's id or e-mail address")
    key_set.set_defaults(handler=_set)
    keys.add_parser(
        "rotate",
        help="re-encrypt every stored key under PB_ENCRYPTION_KEY (earlier keys in"
        " PB_ENCRYPTION_KEY_PREVIOUS)",
    ).set_defaults(handler=_rotate)

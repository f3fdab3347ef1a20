"""What every command shares: settings (found by themselves in a `make run` checkout), clients,
the user named on the command line, tables."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fathom2loom.api_keys import KeyStore, find_user
from fathom2loom.errors import ConfigError, UndecryptableKey
from fathom2loom.keybox import KeyBox
from fathom2loom.logging_setup import configure_logging
from fathom2loom.pocketbase.client import PocketBase, Record
from fathom2loom.providers.factory import Providers
from fathom2loom.providers.fathom import FathomClient
from fathom2loom.settings import NEEDS_ALL, Settings, load_settings

__all__ = ["DEV_ENV", "fathom_for", "load", "print_json", "print_table", "user"]

# Written by `make run` (`python -m devkit run`): the running local stack's settings.
DEV_ENV = Path(".run") / "cli.env"


def load(needs: tuple[str, ...] = NEEDS_ALL) -> Settings:
    """The settings, and this process's log records going to the sink like everyone's.

    Inside a `make run` checkout the CLI finds that stack's settings (`.run/cli.env`) by itself;
    variables set in the environment still win.
    """
    env_files: tuple[Path, ...] = (Path(".env"),)
    if DEV_ENV.is_file() and "PB_URL" not in os.environ:
        env_files += (DEV_ENV,)
    settings = load_settings(needs=needs, _env_file=env_files)
    configure_logging(settings, console_level="WARNING")
    return settings


def user(pb: PocketBase, who: str) -> Record:
    """A user by id or e-mail address (`UnknownUser` otherwise)."""
    return find_user(pb, who)


def fathom_for(
    settings: Settings, pb: PocketBase, user_id: str, providers: Providers
) -> FathomClient:
    """The user's own Fathom view, with their stored key decrypted in memory."""
    box = KeyBox(settings.encryption_key, settings.previous_encryption_keys)
    try:
        key = KeyStore(pb, box).read(user_id, "Fathom")
    except UndecryptableKey as exc:
        raise ConfigError(
            f"the user's stored Fathom key cannot be decrypted ({exc.reason})"
        ) from exc
    if not key:
        raise ConfigError("the user has no Fathom key stored: `fathom2loom keys set USER` first")
    return providers.fathom(key)


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain, aligned table on stdout."""
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    print()

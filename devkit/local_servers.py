"""Start and stop local PocketBase and Redis servers on loopback, for tests, benches and `make run`.

Each server runs in its own process group on a port we chose, with its files in a directory we
own, so stopping it never touches a server somebody else started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fathom2loom.pocketbase.binary import MissingBinary, PocketBaseDir, pocketbase_binary
from fathom2loom.settings import without_secrets

__all__ = [
    "LocalPocketBase",
    "LocalRedis",
    "MissingBinary",
    "free_port",
    "pocketbase_binary",
    "redis_binary",
    "stop_process_group",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_binary() -> Path:
    found = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")
    if not found or not os.access(found, os.X_OK):
        raise MissingBinary(
            "redis-server was not found: install it with `apt-get install redis-server`"
            " (Debian/Ubuntu) or `brew install redis` (macOS), or set REDIS_SERVER_BIN"
        )
    return Path(found)


def stop_process_group(process: subprocess.Popen[Any] | None, grace: float = 5.0) -> None:
    """SIGTERM a process started with `start_new_session=True` and its children; SIGKILL late."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_until(ready: object, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with code {process.returncode}:\n{tail}")
        if callable(ready) and ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within 30s (log: {log})")


@dataclass
class LocalPocketBase:
    """A PocketBase 0.40 server with the project's migrations (and hooks), data in `data_dir`.

    `env` adds to the server's environment: the hooks read `PB_ENCRYPTION_KEY` from it.
    """

    data_dir: Path
    migrations_dir: Path | None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    hooks_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    public_dir: Path | None = None  # static files served at / (the users' web app)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def commands(self) -> PocketBaseDir:
        """`pocketbase <subcommand>` against this server's data (and migrations)."""
        return PocketBaseDir(self.data_dir, self.migrations_dir)

    def migrate(self, *args: str) -> str:
        """Run `pocketbase migrate ...`, answering yes to its confirmation."""
        return self.commands.migrate(*args)

    def create_superuser(self, email: str, password: str) -> None:
        self.commands.create_superuser(email, password)

    def start(self) -> LocalPocketBase:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "serve.log"
        command = [str(pocketbase_binary()), "serve", "--http", f"127.0.0.1:{self.port}"]
        # No automigrate: a collection changed through the API must never write a migration file
        # into the project's pb_migrations.
        command += ["--dir", str(self.data_dir), "--hooksWatch=false", "--automigrate=false"]
        if self.migrations_dir is not None:
            command += ["--migrationsDir", str(self.migrations_dir)]
        if self.hooks_dir is not None:
            command += ["--hooksDir", str(self.hooks_dir)]
        if self.public_dir is not None:
            command += ["--publicDir", str(self.public_dir)]
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**without_secrets(dict(os.environ)), **self.env},
            )
        _wait_until(self.healthy, self.process, "PocketBase", log)
        return self

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        stop_process_group(self.process)
        self.process = None


@dataclass
class LocalRedis:
    """A throw-away `redis-server`: no RDB or AOF files, no eviction (Celery needs every key)."""

    work_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = self.work_dir / "redis.log"
        command = [str(redis_binary()), "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.work_dir)]
        command += ["--maxmemory-policy", "noeviction", "--logfile", str(log)]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=without_secrets(dict(os.environ)),
        )
        _wait_until(self.ping, self.process, "redis-server", log)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process_group(self.process)
        self.process = None

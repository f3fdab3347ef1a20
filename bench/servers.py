"""What every bench needs: its own PocketBase and Redis, bootstrapped, stopped afterwards."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devkit.local_servers import LocalPocketBase, LocalRedis  # noqa: E402
from fathom2loom.bootstrap import bootstrap  # noqa: E402
from fathom2loom.settings import (  # noqa: E402
    DEFAULT_HOOKS_DIR,
    DEFAULT_MIGRATIONS_DIR,
    Settings,
    load_settings,
)

EMAIL, PASSWORD = "bench@fathom2loom.local", "bench-password-123"


@contextmanager
def local_stack(**overrides: Any) -> Iterator[Settings]:
    """Settings pointing at a fresh PocketBase (migrated, bootstrapped) and Redis."""
    # Stop the servers when the bench is interrupted or terminated, too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    key = secrets.token_hex(32)
    with tempfile.TemporaryDirectory() as tmp:
        pocketbase = LocalPocketBase(
            Path(tmp) / "pb",
            DEFAULT_MIGRATIONS_DIR,
            hooks_dir=DEFAULT_HOOKS_DIR,
            env={"PB_ENCRYPTION_KEY": key},
        )
        pocketbase.create_superuser(EMAIL, PASSWORD)
        pocketbase.start()
        store = LocalRedis(Path(tmp) / "redis").start()
        try:
            settings = load_settings(
                pb_url=pocketbase.url,
                redis_url=store.url,
                pb_admin_email=EMAIL,
                pb_admin_password=PASSWORD,
                pb_encryption_key=key,
                _env_file=None,
                **overrides,
            )
            bootstrap(settings)
            yield settings
        finally:
            pocketbase.stop()
            store.stop()


@contextmanager
def standins_process(seed_key: str, meetings: int, size: int) -> Iterator[dict[str, str]]:
    """Fathom and Loom stand-ins in a process of their own (not sharing the bench's CPU time),
    with `meetings` recordings of `size` bytes for `seed_key`; yields their URLs."""
    command = [sys.executable, "-m", "devkit.standins", "--seed-key", seed_key]
    command += ["--meetings", str(meetings), "--size", str(size)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        urls: dict[str, str] = json.loads(process.stdout.readline())
        yield urls
    finally:
        process.terminate()
        process.wait(30)


def stack_env(settings: Settings, fathom_url: str, loom_url: str) -> dict[str, str]:
    """The environment of the bench's Celery processes: its servers, the stand-ins, defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PB_", "REDIS_"))}
    env.update(
        PB_URL=settings.pb_url,
        PB_ADMIN_EMAIL=settings.admin_email,
        PB_ADMIN_PASSWORD=settings.admin_password,
        PB_ENCRYPTION_KEY=settings.secret("PB_ENCRYPTION_KEY"),
        REDIS_URL=settings.redis_url,
        FATHOM_BASE_URL=fathom_url,
        LOOM_BASE_URL=loom_url,
    )
    return env

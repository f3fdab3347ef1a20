"""`make run`: the whole stack on this machine, in the foreground, until Ctrl-C.

Servers keep their files under the state directory (`.run/` by default). When no PocketBase
credentials are configured, a local superuser and encryption key are generated once and kept in
`<state>/dev.env` (mode 0600), so the stack starts on a fresh machine with no setup.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from pathlib import Path

from fathom2loom.bootstrap import bootstrap
from fathom2loom.local_servers import LocalPocketBase, LocalRedis
from fathom2loom.settings import DEFAULT_MIGRATIONS_DIR, load_settings

__all__ = ["run_dev_stack"]

DEV_PB_PORT = int(os.environ.get("DEV_PB_PORT", "8090"))
DEV_REDIS_PORT = int(os.environ.get("DEV_REDIS_PORT", "6380"))


def _dev_credentials(state: Path) -> dict[str, str]:
    """Configured credentials win; otherwise generate them once and keep them in dev.env."""
    env_file = state / "dev.env"
    if not env_file.exists():
        env_file.write_text(
            "PB_ADMIN_EMAIL=admin@fathom2loom.local\n"
            f"PB_ADMIN_PASSWORD={secrets.token_urlsafe(18)}\n"
            f"PB_ENCRYPTION_KEY={secrets.token_hex(32)}\n"
        )
        env_file.chmod(0o600)
    generated = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
    )
    return {key: os.environ.get(key) or value for key, value in generated.items()}


def run_dev_stack(state_dir: str) -> int:
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    credentials = _dev_credentials(state)
    redis = LocalRedis(state / "redis", port=DEV_REDIS_PORT)
    pocketbase = LocalPocketBase(state / "pb_data", DEFAULT_MIGRATIONS_DIR, port=DEV_PB_PORT)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        redis.start()
        pocketbase.start()
        settings = load_settings(
            pb_url=pocketbase.url,
            redis_url=redis.url,
            pb_data_dir=pocketbase.data_dir,
            pb_admin_email=credentials["PB_ADMIN_EMAIL"],
            pb_admin_password=credentials["PB_ADMIN_PASSWORD"],
            pb_encryption_key=credentials["PB_ENCRYPTION_KEY"],
        )
        print(bootstrap(settings), flush=True)
        print(
            f"PocketBase  {pocketbase.url}/_/  (superuser {settings.pb_admin_email};"
            f" password in {state / 'dev.env'} unless set in the environment)\n"
            f"Redis       {redis.url}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        pocketbase.stop()
        redis.stop()
    return 0

"""`make run`: the whole stack on this machine, in the foreground, until Ctrl-C.

Servers keep their files under the state directory (`.run/` by default). When no PocketBase
credentials are configured, a local superuser and encryption key are generated once and kept in
`<state>/dev.env` (mode 0600), so the stack starts on a fresh machine with no setup.

Sandbox mode: with no `LOOM_BASE_URL` configured there is no real Loom adapter to talk to, so the
Fathom and Loom stand-ins run too and the stack points at them; the sandbox Fathom key below sees a
few generated meetings.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

from fathom2loom.bootstrap import bootstrap
from fathom2loom.local_servers import LocalPocketBase, LocalRedis
from fathom2loom.settings import DEFAULT_MIGRATIONS_DIR, load_settings

__all__ = ["run_dev_stack"]

DEV_PB_PORT = int(os.environ.get("DEV_PB_PORT", "8090"))
DEV_REDIS_PORT = int(os.environ.get("DEV_REDIS_PORT", "6380"))
DEV_FATHOM_PORT = int(os.environ.get("DEV_FATHOM_PORT", "8091"))
DEV_LOOM_PORT = int(os.environ.get("DEV_LOOM_PORT", "8092"))
SANDBOX_FATHOM_KEY = "sandbox-fathom-key"
SANDBOX_LOOM_KEY = "sandbox-loom-key"


def _start_standins() -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The stand-ins in their own process: 5 meetings of 50 MB that take 5 s to render."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "fathom2loom.standins"),
            *("--fathom-port", str(DEV_FATHOM_PORT), "--loom-port", str(DEV_LOOM_PORT)),
            *("--seed-key", SANDBOX_FATHOM_KEY, "--meetings", "5", "--size", str(50_000_000)),
            *("--render-seconds", "5"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"the stand-ins exited with code {process.wait()}")
    urls: dict[str, str] = json.loads(line)
    return process, urls


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
    standins: subprocess.Popen[str] | None = None
    providers: dict[str, str] = {}
    try:
        redis.start()
        pocketbase.start()
        if not os.environ.get("LOOM_BASE_URL"):
            standins, urls = _start_standins()
            providers = {"fathom_base_url": urls["fathom_url"], "loom_base_url": urls["loom_url"]}
        settings = load_settings(
            pb_url=pocketbase.url,
            redis_url=redis.url,
            pb_data_dir=pocketbase.data_dir,
            pb_admin_email=credentials["PB_ADMIN_EMAIL"],
            pb_admin_password=credentials["PB_ADMIN_PASSWORD"],
            pb_encryption_key=credentials["PB_ENCRYPTION_KEY"],
            **providers,
        )
        print(bootstrap(settings), flush=True)
        print(
            f"PocketBase  {pocketbase.url}/_/  (superuser {settings.pb_admin_email};"
            f" password in {state / 'dev.env'} unless set in the environment)\n"
            f"Redis       {redis.url}",
            flush=True,
        )
        if standins is not None:
            print(
                f"Sandbox     Fathom stand-in {settings.fathom_base_url}"
                f" (key {SANDBOX_FATHOM_KEY}: 5 meetings, ids 1001-1005)\n"
                f"            Loom stand-in {settings.loom_base_url}"
                f" (any key, e.g. {SANDBOX_LOOM_KEY})",
                flush=True,
            )
        print("Ctrl-C stops everything.", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if standins is not None:
            standins.terminate()
            standins.wait(10)
        pocketbase.stop()
        redis.stop()
    return 0

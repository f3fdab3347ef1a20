"""`make run`: the whole stack on this machine, in the foreground, until Ctrl-C.

Servers keep their files under the state directory (`.run/` by default). When no PocketBase
credentials are configured, a local superuser and encryption key are generated once and kept in
`<state>/dev.env` (mode 0600), so the stack starts on a fresh machine with no setup.

Sandbox mode: with no `LOOM_BASE_URL` configured there is no real Loom adapter to talk to, so the
Fathom and Loom stand-ins run too and the stack points at them; the sandbox Fathom key below sees a
few generated meetings, and the demo user has auto-move on: new meetings end at the Fathom
stand-in every so often and arrive through the webhook receiver by themselves.
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
from typing import Any

from devkit.local_servers import LocalPocketBase, LocalRedis, stop_process_group
from devkit.sandbox import (
    DEMO_EMAIL,
    DEMO_PASSWORD,
    SANDBOX_FATHOM_KEY,
    SANDBOX_LOOM_KEY,
    queue_status,
    seed_demo,
)
from fathom2loom.bootstrap import bootstrap
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.settings import (
    DEFAULT_HOOKS_DIR,
    DEFAULT_MIGRATIONS_DIR,
    DEFAULT_PUBLIC_DIR,
    NEEDS_ALL,
    NEEDS_POCKETBASE,
    Settings,
    load_settings,
    without_secrets,
)

__all__ = ["run_dev_stack"]

DEV_PB_PORT = int(os.environ.get("DEV_PB_PORT", "8090"))
DEV_REDIS_PORT = int(os.environ.get("DEV_REDIS_PORT", "6380"))
DEV_FATHOM_PORT = int(os.environ.get("DEV_FATHOM_PORT", "8091"))
DEV_LOOM_PORT = int(os.environ.get("DEV_LOOM_PORT", "8092"))
DEV_FLOWER_PORT = int(os.environ.get("DEV_FLOWER_PORT", "5555"))
DEV_WEBHOOK_PORT = int(os.environ.get("DEV_WEBHOOK_PORT", "8095"))
SANDBOX_NEW_MEETING_EVERY = 45  # seconds between the sandbox's new meetings (two of them)


def _start_standins() -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The stand-ins in their own process: 5 meetings of 50 MB that take 5 s to render."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "devkit.standins"),
            *("--fathom-port", str(DEV_FATHOM_PORT), "--loom-port", str(DEV_LOOM_PORT)),
            *("--seed-key", SANDBOX_FATHOM_KEY, "--seed-owner-email", DEMO_EMAIL),
            *("--meetings", "5", "--size", str(50_000_000)),
            *("--render-seconds", "5"),
            *("--new-meeting-every", str(SANDBOX_NEW_MEETING_EVERY), "--new-meetings", "2"),
            "--local-share-links",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=without_secrets(dict(os.environ)),
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
    defaults = {
        "PB_ADMIN_EMAIL": "admin@fathom2loom.local",
        "PB_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "PB_ENCRYPTION_KEY": secrets.token_hex(32),
        "FLOWER_BASIC_AUTH": f"admin:{secrets.token_urlsafe(12)}",
    }
    text = env_file.read_text() if env_file.exists() else ""
    kept = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    missing = {key: value for key, value in defaults.items() if key not in kept}
    if missing:  # A dev.env from an older checkout gets what it lacks.
        env_file.write_text(text + "".join(f"{k}={v}\n" for k, v in missing.items()))
        env_file.chmod(0o600)
    generated = {**kept, **missing}
    return {key: os.environ.get(key) or value for key, value in generated.items()}


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """One of the stack's processes, its output in `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _write_cli_env(state: Path, settings: Settings) -> None:
    """`fathom2loom ...` run in this checkout finds this stack's settings here (mode 0600)."""
    env = _role_env(settings, NEEDS_ALL, inherit=False)
    path = state / "cli.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in sorted(env.items())))
    path.chmod(0o600)


def _role_env(
    settings: Settings, secrets_needed: tuple[str, ...], *, inherit: bool = True
) -> dict[str, str]:
    """A process's environment with the secrets its role needs and no other (as compose gives
    them): whatever secret the operator's shell holds is not passed on."""
    env = without_secrets(dict(os.environ)) if inherit else {}
    env.update(
        PB_URL=settings.pb_url,
        REDIS_URL=settings.redis_url,
        FATHOM_BASE_URL=settings.fathom_base_url,
        FATHOM_POLL_INITIAL_SECONDS=os.environ.get("FATHOM_POLL_INITIAL_SECONDS", "1"),
    )
    env.update({name: settings.secret(name) for name in secrets_needed})
    if settings.loom_base_url:
        env["LOOM_BASE_URL"] = settings.loom_base_url
    if settings.webhook_public_url:
        env["WEBHOOK_PUBLIC_URL"] = settings.webhook_public_url
    return env


def _start_services(
    settings: Settings, logs: Path, flower_login: str
) -> list[subprocess.Popen[bytes]]:
    """Workers and the receiver hold the superuser and the encryption key (they read users'
    keys and webhook secrets), beat the superuser alone, Flower only Redis and its login."""
    celery = [sys.executable, "-m", "celery", "-A", "tasks.celery_app"]
    cli = [sys.executable, "-m", "fathom2loom.cli"]
    worker = ["worker", "--concurrency", "2", "--loglevel", "INFO"]
    flower = ["flower", f"--port={DEV_FLOWER_PORT}", "--address=127.0.0.1"]
    return [
        _spawn([*celery, *worker], _role_env(settings, NEEDS_ALL), logs / "worker.log"),
        _spawn(
            [*celery, "beat", "--loglevel", "INFO"],
            _role_env(settings, NEEDS_POCKETBASE),
            logs / "beat.log",
        ),
        _spawn(
            [*cli, *flower],
            {**_role_env(settings, ()), "FLOWER_BASIC_AUTH": flower_login},
            logs / "flower.log",
        ),
        _spawn(
            [*cli, "webhooks"],
            {**_role_env(settings, NEEDS_ALL), "WEBHOOK_LISTEN_PORT": str(DEV_WEBHOOK_PORT)},
            logs / "webhooks.log",
        ),
    ]


def run_dev_stack(state_dir: str) -> int:
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    credentials = _dev_credentials(state)
    redis = LocalRedis(state / "redis", port=DEV_REDIS_PORT)
    pocketbase = LocalPocketBase(
        state / "pb_data",
        DEFAULT_MIGRATIONS_DIR,
        port=DEV_PB_PORT,
        hooks_dir=DEFAULT_HOOKS_DIR,
        public_dir=DEFAULT_PUBLIC_DIR,
        # The web app's meetings list asks the service's HTTP process (fathom2loom/meetings_api).
        env={
            "PB_ENCRYPTION_KEY": credentials["PB_ENCRYPTION_KEY"],
            "FATHOM2LOOM_SERVICE_URL": f"http://127.0.0.1:{DEV_WEBHOOK_PORT}",
        },
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    children: list[subprocess.Popen[Any]] = []
    providers: dict[str, Any] = {}
    try:
        redis.start()
        pocketbase.start()
        sandbox = not os.environ.get("LOOM_BASE_URL")
        if sandbox:
            standins, urls = _start_standins()
            children.append(standins)
            providers = {
                "fathom_base_url": urls["fathom_url"],
                "loom_base_url": urls["loom_url"],
                "webhook_public_url": os.environ.get(
                    "WEBHOOK_PUBLIC_URL", f"http://127.0.0.1:{DEV_WEBHOOK_PORT}"
                ),
            }
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
        _write_cli_env(state, settings)
        children += _start_services(settings, state, credentials["FLOWER_BASIC_AUTH"])
        print(
            f"Web app     {pocketbase.url}/  (sign up there: your meetings, keys and transfers)\n"
            f"PocketBase  {pocketbase.url}/_/  (superuser {settings.pb_admin_email};"
            f" password in {state / 'dev.env'} unless set in the environment)\n"
            f"Redis       {redis.url}\n"
            f"Flower      http://127.0.0.1:{DEV_FLOWER_PORT}/  (login FLOWER_BASIC_AUTH in"
            f" {state / 'dev.env'})\n"
            f"Celery      worker (2 slots), beat; logs in {state}\n"
            f"Webhooks    http://127.0.0.1:{DEV_WEBHOOK_PORT}/fathom/<user id>  (public URL"
            f" {settings.webhook_public_url or 'not set: WEBHOOK_PUBLIC_URL'})",
            flush=True,
        )
        demo_user = None
        if sandbox:
            print(
                f"Sandbox     Fathom stand-in {settings.fathom_base_url}"
                f" (key {SANDBOX_FATHOM_KEY}: 5 meetings, ids 1001-1005)\n"
                f"            Loom stand-in {settings.loom_base_url}"
                f" (any key, e.g. {SANDBOX_LOOM_KEY})",
                flush=True,
            )
            with PocketBase.from_settings(settings) as pb:
                demo_user = seed_demo(pb, settings, SANDBOX_FATHOM_KEY, SANDBOX_LOOM_KEY)
            print(
                f"Demo        {DEMO_EMAIL}'s five meetings are queued; auto-move is on, so two"
                f" new meetings arrive by themselves (one every {SANDBOX_NEW_MEETING_EVERY} s)\n"
                f"            Web app: sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}, or sign up and"
                f" save the keys {SANDBOX_FATHOM_KEY} and {SANDBOX_LOOM_KEY}",
                flush=True,
            )
        print("Ctrl-C stops everything.", flush=True)
        _watch(settings, demo_user, stop)
    except KeyboardInterrupt:
        pass
    finally:
        for child in reversed(children):
            stop_process_group(child)
        pocketbase.stop()
        redis.stop()
    return 0


def _watch(settings: Settings, demo_user: str | None, stop: threading.Event) -> None:
    """Show the demo rows as they move, until Ctrl-C."""
    last = ""
    with PocketBase.from_settings(settings) as pb:
        while not stop.wait(2.0):
            if demo_user is None:
                continue
            table = queue_status(pb, demo_user)
            if table != last:
                print(table, flush=True)
                last = table

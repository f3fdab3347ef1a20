"""The `fathom2loom` command line."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Sequence

from fathom2loom.api_keys import find_user, rotate_keys, store_keys
from fathom2loom.errors import Fathom2LoomError
from fathom2loom.keybox import KeyBox
from fathom2loom.local_servers import MissingBinary
from fathom2loom.logsink.handler import install_log_sink
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.settings import ConfigError, Settings, load_settings

__all__ = ["main"]


def _settings() -> Settings:
    """The settings, with this process's log records going to the sink like everyone's."""
    settings = load_settings()
    install_log_sink(settings.redis_url, settings.log_buffer_max_records)
    return settings


def _bootstrap(_args: argparse.Namespace) -> int:
    from fathom2loom.bootstrap import bootstrap

    print(bootstrap(_settings()))
    return 0


def _keybox_and_pb() -> tuple[KeyBox, PocketBase]:
    settings = _settings()
    box = KeyBox(settings.encryption_key, settings.previous_encryption_keys)
    return box, PocketBase.from_settings(settings)


def _read_key(name: str) -> str | None:
    """From $<NAME>_API_KEY, else a hidden prompt, else a line of stdin; never from argv."""
    env = os.environ.get(f"{name.upper()}_API_KEY")
    if env:
        return env
    if sys.stdin.isatty():
        return getpass.getpass(f"{name} API key (empty keeps the stored one): ") or None
    return sys.stdin.readline().strip() or None


def _keys_set(args: argparse.Namespace) -> int:
    box, pb = _keybox_and_pb()
    with pb:
        user = find_user(pb, args.user)
        store_keys(pb, box, user["id"], fathom=_read_key("Fathom"), loom=_read_key("Loom"))
    print(
        f"stored the keys of {user.get('email') or user['id']}, encrypted with key {box.current_id}"
    )
    return 0


def _keys_rotate(_args: argparse.Namespace) -> int:
    box, pb = _keybox_and_pb()
    with pb:
        report = rotate_keys(pb, box)
    print(report)
    return 1 if report.undecryptable else 0


def _flower(args: argparse.Namespace) -> int:
    """Flower behind a login: refuse to start without credentials; they stay in the environment
    (Flower reads FLOWER_BASIC_AUTH itself), never in argv where `ps` would show them."""
    credentials = os.environ.get("FLOWER_BASIC_AUTH", "")
    pairs = [pair.partition(":") for pair in credentials.split(",") if pair]
    if not pairs or any(not user or len(password) < 10 for user, _, password in pairs):
        raise ConfigError(
            "FLOWER_BASIC_AUTH is not set: expected user:password (password at least 10"
            " characters; several pairs comma-separated). Flower's pages and API show every task"
            " and worker, so they are not served without a login."
        )
    load_settings(needs=())  # Redis settings checked here, with the usual one-line errors.
    celery = [sys.executable, "-m", "celery", "-A", "tasks.celery_app", "flower"]
    os.execv(sys.executable, [*celery, *args.flower_args])
    return 0  # Not reached: exec replaced this process.


def _demo(_args: argparse.Namespace) -> int:
    from fathom2loom.sandbox import DEMO_EMAIL, SANDBOX_FATHOM_KEY, SANDBOX_LOOM_KEY, seed_demo

    settings = _settings()
    with PocketBase.from_settings(settings) as pb:
        seed_demo(pb, settings, SANDBOX_FATHOM_KEY, SANDBOX_LOOM_KEY)
    print(f"{DEMO_EMAIL} has stand-in keys and the sandbox meetings queued")
    return 0


def _dev(args: argparse.Namespace) -> int:
    from fathom2loom.devstack import run_dev_stack

    return run_dev_stack(args.state_dir)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fathom2loom", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "bootstrap", help="prepare PocketBase: superuser, collections, defaults (idempotent)"
    ).set_defaults(handler=_bootstrap)
    keys = commands.add_parser("keys", help="users' Fathom and Loom API keys").add_subparsers(
        dest="keys_command", required=True
    )
    key_set = keys.add_parser(
        "set",
        help="store a user's keys encrypted (read from FATHOM_API_KEY/LOOM_API_KEY, a prompt,"
        " or two lines of stdin)",
    )
    key_set.add_argument("user", help="the user's id or e-mail address")
    key_set.set_defaults(handler=_keys_set)
    keys.add_parser(
        "rotate", help="re-encrypt every stored key under PB_ENCRYPTION_KEY"
    ).set_defaults(handler=_keys_rotate)
    flower = commands.add_parser(
        "flower",
        help="run Flower with a login from FLOWER_BASIC_AUTH (refuses to start without one);"
        " other arguments go to Flower, e.g. --port=5555",
    )
    flower.set_defaults(handler=_flower, passes_through=True)
    commands.add_parser(
        "demo", help="sandbox: a demo user with stand-in keys and its meetings queued (idempotent)"
    ).set_defaults(handler=_demo)
    dev = commands.add_parser("dev", help="run the whole stack locally (what `make run` runs)")
    dev.add_argument("--state-dir", default=".run", help="where local servers keep their files")
    dev.set_defaults(handler=_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passes_through", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.flower_args = rest
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"fathom2loom: configuration error: {exc}", file=sys.stderr)
        return 2
    except (Fathom2LoomError, MissingBinary) as exc:
        print(f"fathom2loom: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

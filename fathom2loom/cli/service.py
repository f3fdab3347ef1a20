"""Running the service: bootstrap, Flower behind a login, the HTTP process.

(`make run` and the sandbox's demo user are the dev kit's: `python -m devkit`.)
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from fathom2loom.cli.common import load
from fathom2loom.errors import ConfigError
from fathom2loom.settings import load_settings

__all__ = ["register"]


def _bootstrap(_args: argparse.Namespace) -> int:
    from fathom2loom.bootstrap import bootstrap

    print(bootstrap(load()))
    return 0


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
    os.execv(sys.executable, [*celery, *args.passed_through])
    return 0  # Not reached: exec replaced this process.


def _webhooks(_args: argparse.Namespace) -> int:
    from fathom2loom.http_service import serve

    serve(load())
    return 0


def register(commands: Any) -> None:
    commands.add_parser(
        "bootstrap", help="prepare PocketBase: superuser, collections, defaults (idempotent)"
    ).set_defaults(handler=_bootstrap)
    flower = commands.add_parser(
        "flower",
        help="run Flower with a login from FLOWER_BASIC_AUTH (refuses to start without one);"
        " other arguments go to Flower, e.g. --port=5555",
    )
    flower.set_defaults(handler=_flower, passes_through=True)
    commands.add_parser(
        "webhooks",
        help="run the service's HTTP process: the webhook receiver Fathom delivers new meetings"
        " to, and the web app's meetings list for PocketBase (WEBHOOK_LISTEN_HOST/PORT; publish"
        " only /fathom/, behind a TLS reverse proxy at WEBHOOK_PUBLIC_URL)",
    ).set_defaults(handler=_webhooks)

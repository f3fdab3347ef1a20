"""What worker and beat processes do as they start and stop, around the tasks themselves.

- Each process checks at start that it has the secrets its role needs, and stops with one line
  naming the missing variable otherwise: a worker that takes transfers needs the PocketBase
  superuser and `PB_ENCRYPTION_KEY`; a dispatch-only worker and beat need the superuser; Flower
  needs neither.
- A worker that takes transfers announces its slots while it lives (`fathom2loom.workers`), so
  the dispatcher sends no more than the fleet can run, and leaves at a clean shutdown.
"""

from __future__ import annotations

import sys
from typing import Any

from celery.signals import beat_init, celeryd_init, worker_ready, worker_shutdown

from fathom2loom.settings import NEEDS_ALL, NEEDS_POCKETBASE, ConfigError, get_settings
from fathom2loom.workers import WorkerPresence
from tasks.context import redis_client

__all__: list[str] = []

TRANSFERS = "transfers"
_presence: list[WorkerPresence] = []


def _require(*needs: str) -> None:
    try:
        get_settings().require(*needs)
    except ConfigError as exc:
        print(f"fathom2loom: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _takes_transfers(queues: Any) -> bool:
    """True unless `-Q` names queues and `transfers` is not among them."""
    if not queues:
        return True
    names = queues.split(",") if isinstance(queues, str) else list(queues)
    return TRANSFERS in {str(name).strip() for name in names}


@celeryd_init.connect
def _check_worker_settings(options: dict[str, Any] | None = None, **_: Any) -> None:
    takes = _takes_transfers((options or {}).get("queues"))
    _require(*(NEEDS_ALL if takes else NEEDS_POCKETBASE))


@beat_init.connect
def _check_beat_settings(**_: Any) -> None:
    _require(*NEEDS_POCKETBASE)


@worker_ready.connect
def _announce(sender: Any, **_: Any) -> None:
    consume_from = sender.app.amqp.queues.consume_from
    if consume_from is not None and TRANSFERS not in consume_from:
        return
    client = redis_client(get_settings().redis_url)
    slots = int(sender.controller.concurrency)
    _presence.append(WorkerPresence(client, sender.hostname, slots).start())


@worker_shutdown.connect
def _leave(**_: Any) -> None:
    while _presence:
        _presence.pop().stop()

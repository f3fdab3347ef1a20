"""What worker and beat processes do as they start and stop, around the tasks themselves.

- Each process checks at start that it has the secrets its role needs, and stops with one line
  naming the missing variable otherwise: a worker that takes transfers needs the PocketBase
  superuser and `PB_ENCRYPTION_KEY`; a dispatch-only worker and beat need the superuser; Flower
  needs neither.
- A worker that takes transfers announces its slots while it lives (`fathom2loom.workers`), so
  the dispatcher sends no more than the fleet can run, and leaves at a clean shutdown.
- A worker told to stop (SIGTERM: `docker-compose stop`, a scale-down) tells its pool children
  at once (SIGUSR2, which Celery leaves free in them); a running transfer then hands its row back
  at the next chunk (the upload offset stays on the tus server), so the worker exits within
  seconds and another worker continues the row, instead of holding it until it is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any

from celery.signals import (
    beat_init,
    celeryd_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from fathom2loom.settings import NEEDS_ALL, NEEDS_POCKETBASE, ConfigError, get_settings
from fathom2loom.workers import WorkerPresence
from tasks.context import redis_client

__all__ = ["shutting_down"]

TRANSFERS = "transfers"
SHUTDOWN_SIGNAL = signal.SIGUSR2
_presence: list[WorkerPresence] = []
_controllers: list[Any] = []
_stopping = threading.Event()


def shutting_down() -> bool:
    """In a pool child: the worker it belongs to has been told to stop."""
    return _stopping.is_set()


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


@worker_process_init.connect
def _listen_for_shutdown(**_: Any) -> None:
    signal.signal(SHUTDOWN_SIGNAL, lambda signum, frame: _stopping.set())


@worker_shutting_down.connect
def _hand_rows_back(**_: Any) -> None:
    """Runs in the main process as it starts a shutdown: stop taking slots, tell the children."""
    _leave()
    for controller in _controllers:
        for pid in controller.pool.info.get("processes", []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, SHUTDOWN_SIGNAL)


@worker_ready.connect
def _announce(sender: Any, **_: Any) -> None:
    _controllers.append(sender.controller)
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

"""Fast pickup: a sync within a second of a new pending row, on top of beat's tick.

Started in the beat process (`beat_init`): one thread listens to PocketBase realtime events on
`queue`, another runs a sync whenever an event says a row became pending, and once after every
(re)connect, since events missed while disconnected are not replayed. The beat tick still covers
everything when the listener is down.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import beat_init

from fathom2loom.pocketbase.realtime import RealtimeListener
from tasks.context import WorkerContext, get_context
from tasks.sync_queue import sync_now

__all__ = ["Wakeup", "start_wakeup"]

log = logging.getLogger(__name__)


class Wakeup:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.wake = threading.Event()
        self.listener = RealtimeListener(
            ctx.pb, ["queue/*"], self._on_event, on_connect=self.wake.set
        )

    def _on_event(self, topic: str, data: dict[str, Any]) -> None:
        record = data.get("record") or {}
        if data.get("action") in ("create", "update") and record.get("status") == "pending":
            self.wake.set()

    def _sync_on_wake(self) -> None:
        while not self.listener.stop.is_set():
            if not self.wake.wait(1.0):
                continue
            self.wake.clear()
            try:
                sync_now(self.ctx)
            except Exception:
                log.exception("realtime wake-up sync failed; beat's tick will cover it")

    def start(self) -> Wakeup:
        for target, name in ((self.listener.run, "listener"), (self._sync_on_wake, "syncer")):
            threading.Thread(target=target, name=f"realtime {name}", daemon=True).start()
        return self

    def stop(self) -> None:
        self.listener.stop.set()


def start_wakeup() -> Wakeup | None:
    ctx = get_context()
    if not ctx.settings.realtime_wakeup:
        return None
    return Wakeup(ctx).start()


@beat_init.connect
def _on_beat_init(**_: Any) -> None:
    start_wakeup()

"""Fast dispatch between beat's ticks: a sync within moments of anything that frees or needs a slot.

Started in the beat process (`beat_init`). One thread runs a sync whenever something asks for one:
- a sync request that is due (`fathom2loom.wakeups`): a transfer finished, failed or recorded a
  wait (then at the moment the wait ends), or the last sync saw a wait that ends later;
- a PocketBase realtime event that means new work (`fathom2loom.queue_events`): a row created,
  set back to pending, cancelled, or ended; and once after every (re)connect of the listener,
  since events missed while disconnected are not replayed. Writes that change nothing of that (a
  position, a progress update) do not wake it: the sync's own writes never start another sync.
The same listener hears users saving keys (`api_keys`) and sends the key check at once, and
sends the auto-move webhook upkeep when a user changes `user_meta` or their keys; both are sent
once after every (re)connect too, for the changes it did not hear (beat starting after a user
turned auto-move on, say). A send that fails (Redis away) is logged and left to the periodic
sweeps: it never ends the listener.
Beat's tick still covers everything when Redis or the listener is away; nothing here is the only
path to a row.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from celery import Task
from celery.signals import beat_init

from fathom2loom.api_keys import SavedKeys
from fathom2loom.key_check import fingerprint
from fathom2loom.pocketbase.realtime import RealtimeListener
from fathom2loom.queue_events import NewWorkFilter
from fathom2loom.wakeups import take_due
from tasks.auto_move import keep_webhooks
from tasks.context import WorkerContext, get_context
from tasks.keys_check import check_saved_keys
from tasks.outages import rides_out_outages
from tasks.sync_queue import sync_now

__all__ = ["POLL_SECONDS", "Wakeup", "start_wakeup"]

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2


class Wakeup:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.new_work = NewWorkFilter()
        self.listener: RealtimeListener | None = None
        if ctx.settings.realtime_wakeup:
            self.listener = RealtimeListener(
                ctx.pb,
                ["queue/*", "api_keys/*", "user_meta/*"],
                self._on_event,
                on_connect=self._on_connect,
            )
            self.listener.stop = self.stop

    def _on_event(self, topic: str, data: dict[str, Any]) -> None:
        record, action = data.get("record") or {}, str(data.get("action"))
        if topic.startswith("api_keys/"):
            keys = SavedKeys.from_record(record)
            if action != "delete" and keys.checked_for != fingerprint(keys):
                _send(check_saved_keys)
            _send(keep_webhooks)
        elif topic.startswith("user_meta/"):
            _send(keep_webhooks)
        elif self.new_work.means_new_work(action, record):
            self.wake.set()

    def _on_connect(self) -> None:
        """Events missed while disconnected are not replayed: act as if each had come."""
        self.wake.set()
        _send(check_saved_keys)
        _send(keep_webhooks)

    def _due(self) -> bool:
        try:
            return take_due(self.ctx.redis) > 0
        except redis.RedisError:
            return False  # Redis is away; beat's tick and the rows will cover it.

    def _sync_on_wake(self) -> None:
        while not self.stop.is_set():
            woken = self.wake.wait(POLL_SECONDS)
            if not (self._due() or woken):
                continue
            self.wake.clear()
            try:
                _sync_riding_out_outages(self.ctx)
            except Exception:
                log.exception("wake-up sync failed; beat's tick will cover it")

    def start(self) -> Wakeup:
        threading.Thread(target=self._sync_on_wake, name="wake-up syncer", daemon=True).start()
        if self.listener is not None:
            threading.Thread(target=self.listener.run, name="realtime", daemon=True).start()
        return self


_sync_riding_out_outages = rides_out_outages(sync_now)


def _send(task: Task[[], Any]) -> None:
    try:
        task.apply_async()
    except Exception as exc:  # Redis away: the periodic sweep sends it later.
        log.warning("could not send %s (%s); its periodic sweep will cover it", task.name, exc)


def start_wakeup() -> Wakeup:
    return Wakeup(get_context()).start()


@beat_init.connect
def _on_beat_init(**_: Any) -> None:
    start_wakeup()

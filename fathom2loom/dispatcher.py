"""The dispatcher's sync: mirrors active PocketBase queue rows into transfer tasks.

PocketBase is the truth; Redis only carries messages. Each sync reads the pending and processing
rows, plans the fair dispatch order (`fathom2loom.dispatch_plan`), and sends what may start now:
new rows, rows whose recorded wait is over, and rows whose worker is gone (killed, Redis restarted
empty). It sends no more than the live workers have slots (`fathom2loom.workers`) and
`DISPATCH_MAX_IN_FLIGHT` allow, then writes the positions that changed. Rows are read and
positions written in bulk (through `queue_store.QueueStore`, the rows' one owner): one request
each, whatever the queue's length.

It runs on beat's tick (`tasks.sync_queue`) and on a wake-up (`tasks.realtime_wakeup`): a new row
(PocketBase realtime), a transfer that finished or must wait (`fathom2loom.wakeups`). Syncs never
overlap (a Redis lock; a sync asked for while one runs makes it run once more), and each send
first claims the row's in-flight marker, so a row is never sent twice while its task lives, even
with two beats.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from fathom2loom.dispatch_plan import plan_dispatch
from fathom2loom.inflight import InFlight
from fathom2loom.lease import Lease
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.queue_rows import Status
from fathom2loom.queue_store import QueueStore
from fathom2loom.settings import Settings
from fathom2loom.wakeups import request_sync
from fathom2loom.workers import worker_slots

__all__ = ["SyncReport", "sync_once"]

log = logging.getLogger(__name__)
LOCK_KEY, AGAIN_KEY = "f2l:sync:lock", "f2l:sync:again"
# Short, and renewed while a sync runs: a dispatcher killed mid-sync holds the queue up for
# seconds, not minutes.
LOCK_SECONDS = 10


@dataclass
class SyncReport:
    pending: int = 0
    processing: int = 0
    sent: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    rescued: list[str] = field(default_factory=list)
    positions_written: int = 0
    slots: int | None = None  # live workers' slots, when any worker reports them
    seconds: float = 0.0


def _sync(
    pb: PocketBase, client: redis.Redis, settings: Settings, send: Callable[[str], Any]
) -> SyncReport:
    started = time.monotonic()
    inflight = InFlight(client)
    queue = QueueStore(pb)
    rows = queue.active()
    alive = inflight.alive([r.id for r in rows])
    slots = worker_slots(client)
    limit = (
        settings.dispatch_max_in_flight
        if slots is None
        else min(slots, settings.dispatch_max_in_flight)
    )
    plan = plan_dispatch(
        rows,
        alive,
        max_in_flight=limit,
        per_user=settings.dispatch_per_user,
        now=datetime.now(UTC),
    )
    report = SyncReport(
        pending=sum(r.status == Status.PENDING for r in rows),
        processing=sum(r.status == Status.PROCESSING for r in rows),
        slots=slots,
    )
    for row_id in plan.order:
        if not inflight.claim(row_id, settings.dispatch_claim_seconds):
            continue  # Another sync sent it a moment ago.
        try:
            send(row_id)
        except Exception:
            inflight.release(row_id)
            raise
        kind = (
            report.sent
            if row_id in plan.send
            else report.resumed
            if row_id in plan.resume
            else report.rescued
        )
        kind.append(row_id)
    if plan.next_due is not None:
        request_sync(client, plan.next_due.timestamp() - time.time(), member="next-due")
    report.positions_written = queue.write_positions(plan.changed_positions(rows))
    queue.clear_old_ends(r for r in rows if r.has_old_end)
    report.seconds = time.monotonic() - started
    return report


def sync_once(
    pb: PocketBase,
    client: redis.Redis,
    settings: Settings,
    send: Callable[[str], Any],
) -> SyncReport | None:
    """One sync, or None when another is running (which then runs once more for us)."""
    lock = Lease.take(client, LOCK_KEY, LOCK_SECONDS)
    if lock is None:
        client.set(AGAIN_KEY, 1, ex=LOCK_SECONDS * 6)
        return None
    lock.keep_alive()
    try:
        while True:
            client.delete(AGAIN_KEY)
            report: SyncReport = _sync(pb, client, settings, send)
            if report.sent or report.resumed or report.rescued:
                log.info(
                    "sync: sent %d new, resumed %d, rescued %d; %d pending, %d positions written",
                    len(report.sent),
                    len(report.resumed),
                    len(report.rescued),
                    report.pending,
                    report.positions_written,
                )
            if not client.delete(AGAIN_KEY):
                return report
    finally:
        lock.release()

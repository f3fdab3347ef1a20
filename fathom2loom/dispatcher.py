"""The dispatcher's sync: mirrors active PocketBase queue rows into transfer tasks.

PocketBase is the truth; Redis only carries messages. Each sync reads the pending and processing
rows, plans the fair dispatch order (`fathom2loom.dispatch_plan`), and sends what may start now:
new rows, rows whose recorded wait is over, and rows whose worker is gone (killed, Redis restarted
empty). It sends no more than the live workers have slots (`fathom2loom.workers`) and
`DISPATCH_MAX_IN_FLIGHT` allow, then writes the positions that changed. Rows are read and
positions written in bulk (`pocketbase.bulk`): one request each, whatever the queue's length.

It runs on beat's tick (`tasks.sync_queue`) and on a wake-up (`tasks.realtime_wakeup`): a new row
(PocketBase realtime), a transfer that finished or must wait (`fathom2loom.wakeups`). Syncs never
overlap (a Redis lock; a sync asked for while one runs makes it run once more), and each send
first claims the row's in-flight marker, so a row is never sent twice while its task lives, even
with two beats.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from fathom2loom.dispatch_plan import QueuedRow, plan_dispatch
from fathom2loom.errors import PocketBaseBatchFailed
from fathom2loom.inflight import InFlight
from fathom2loom.lease import Lease
from fathom2loom.pocketbase.client import BatchOp, PocketBase, Record
from fathom2loom.queue_rows import COLLECTION, DISPATCH_FIELDS, Status
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


def _rows(pb: PocketBase) -> tuple[list[QueuedRow], dict[str, dict[str, Any]]]:
    """The active rows, and the clean-ups some pending rows need (a retried row's old end)."""
    found: Iterable[Record] | None = pb.bulk.active_rows()
    if found is None:
        found = pb.walk(
            COLLECTION,
            filter=f'status = "{Status.PENDING}" || status = "{Status.PROCESSING}"',
            fields=DISPATCH_FIELDS,
            per_page=1000,
        )
    rows, cleanups = [], {}
    for record in found:
        rows.append(_queued(record))
        if record["status"] == Status.PENDING and (
            record.get("completed_at") or record.get("error_message")
        ):
            cleanups[record["id"]] = {"completed_at": "", "error_message": ""}
    return rows, cleanups


def _queued(record: Record) -> QueuedRow:
    return QueuedRow(
        id=record["id"],
        user_id=record["user_id"],
        status=record["status"],
        queued_at=record.get("queued_at") or record.get("created") or "",
        position=int(record.get("position") or 0),
        next_attempt_at=record.get("next_attempt_at") or "",
    )


def _write_positions(
    pb: PocketBase, changes: dict[str, int], cleanups: dict[str, dict[str, Any]]
) -> int:
    """Positions in bulk (one request, one statement); the few clean-ups through the batch API.

    A row deleted meanwhile is passed over.
    """
    written = pb.bulk.positions(changes) if changes else 0
    if cleanups:
        ops = [BatchOp("PATCH", COLLECTION, id=i, body=body) for i, body in cleanups.items()]
        try:
            pb.batch(ops)
        except PocketBaseBatchFailed:  # A row went away meanwhile: the next sync tries again.
            log.info("sync: a retried row changed under the clean-up; the next sync redoes it")
    return written


def _sync(
    pb: PocketBase, client: redis.Redis, settings: Settings, send: Callable[[str], Any]
) -> SyncReport:
    started = time.monotonic()
    inflight = InFlight(client)
    rows, cleanups = _rows(pb)
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
    report.positions_written = _write_positions(pb, plan.changed_positions(rows), cleanups)
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

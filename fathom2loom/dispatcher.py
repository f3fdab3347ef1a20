"""The dispatcher's sync: mirrors pending PocketBase queue rows into transfer tasks.

PocketBase is the truth; Redis only carries messages. Each sync reads the pending and processing
rows, plans the fair dispatch order (`fathom2loom.dispatch_plan`), sends what may start now,
re-sends rows whose task is gone (worker died, Redis flushed), and writes the positions that
changed through the batch API. It runs on beat's tick (`tasks.sync_queue`) and, within a second
of a new row, on a realtime wake-up (`tasks.realtime_wakeup`). Syncs never overlap (a Redis lock;
a sync asked for while one runs makes it run once more), and each send first claims the row's
in-flight marker, so a row is never sent twice while its task lives, even with two beats.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from fathom2loom.dispatch_plan import QueuedRow, plan_dispatch
from fathom2loom.errors import PocketBaseBatchFailed
from fathom2loom.inflight import InFlight
from fathom2loom.lease import Lease
from fathom2loom.pocketbase.client import BatchOp, PocketBase
from fathom2loom.settings import Settings

__all__ = ["SyncReport", "sync_once"]

log = logging.getLogger(__name__)
LOCK_KEY, AGAIN_KEY = "f2l:sync:lock", "f2l:sync:again"
LOCK_SECONDS = 120
FIELDS = "id,user_id,status,queued_at,created,position"


@dataclass
class SyncReport:
    pending: int = 0
    processing: int = 0
    sent: list[str] = field(default_factory=list)
    rescued: list[str] = field(default_factory=list)
    positions_written: int = 0
    seconds: float = 0.0


def _rows(pb: PocketBase) -> list[QueuedRow]:
    found = pb.walk(
        "queue",
        filter='status = "pending" || status = "processing"',
        fields=FIELDS,
        per_page=1000,
    )
    return [
        QueuedRow(
            id=r["id"],
            user_id=r["user_id"],
            status=r["status"],
            queued_at=r.get("queued_at") or r.get("created") or "",
            position=int(r.get("position") or 0),
        )
        for r in found
    ]


def _write_positions(pb: PocketBase, changes: dict[str, int]) -> int:
    """Batch-write positions; a row deleted meanwhile is dropped and the rest written."""
    ops = [BatchOp("PATCH", "queue", id=i, body={"position": n}) for i, n in changes.items()]
    written = 0
    while ops:
        try:
            pb.batch(ops)
            return written + len(ops)
        except PocketBaseBatchFailed as exc:
            if exc.index is None:
                raise
            # Chunks before the failing one are applied; skip the failing row and go on.
            chunk_start = exc.index - exc.index % pb.batch_size
            written += chunk_start
            ops = ops[chunk_start : exc.index] + ops[exc.index + 1 :]
    return written


def _sync(
    pb: PocketBase, client: redis.Redis, settings: Settings, send: Callable[[str], Any]
) -> SyncReport:
    started = time.monotonic()
    inflight = InFlight(client)
    rows = _rows(pb)
    alive = inflight.alive([r.id for r in rows])
    plan = plan_dispatch(
        rows,
        alive,
        max_in_flight=settings.dispatch_max_in_flight,
        per_user=settings.dispatch_per_user,
    )
    report = SyncReport(
        pending=sum(r.status == "pending" for r in rows),
        processing=sum(r.status == "processing" for r in rows),
    )
    for row_id in plan.rescue + plan.send:
        if not inflight.claim(row_id, settings.dispatch_claim_seconds):
            continue  # Another sync sent it a moment ago.
        try:
            send(row_id)
        except Exception:
            inflight.release(row_id)
            raise
        (report.rescued if row_id in plan.rescue else report.sent).append(row_id)
    report.positions_written = _write_positions(pb, plan.changed_positions(rows))
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
        client.set(AGAIN_KEY, 1, ex=LOCK_SECONDS)
        return None
    try:
        while True:
            client.delete(AGAIN_KEY)
            report: SyncReport = _sync(pb, client, settings, send)
            if report.sent or report.rescued:
                log.info(
                    "sync: sent %d, rescued %d, %d pending, %d positions written",
                    len(report.sent),
                    len(report.rescued),
                    report.pending,
                    report.positions_written,
                )
            if not client.delete(AGAIN_KEY):
                return report
    finally:
        lock.release()

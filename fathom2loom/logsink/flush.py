"""Moving buffered records into `logs`: at least once, and never twice.

Each record carries its own id, so re-sending a batch whose fate is unknown (PocketBase down,
flusher killed) cannot duplicate it: the re-sent batch collides and is written as upserts.
Records stay in Redis until PocketBase accepted them. A record PocketBase refuses (say its user
was deleted) is stored without the offending relation rather than lost.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from fathom2loom.errors import PocketBaseBatchFailed
from fathom2loom.logsink.buffer import LogBuffer
from fathom2loom.logsink.records import new_id
from fathom2loom.pocketbase.client import BatchOp, PocketBase
from fathom2loom.pocketbase.dates import now_iso

__all__ = ["FlushReport", "flush_logs"]

log = logging.getLogger(__name__)
LOCK_SECONDS = 10.0  # Renewed while the flush runs: a killed flusher blocks others briefly.


@dataclass
class FlushReport:
    written: int = 0
    batches: int = 0
    dropped_reported: int = 0
    seconds: float = 0.0


def _write(pb: PocketBase, rows: list[dict[str, Any]]) -> None:
    """Create the rows with their own ids; a batch that partly exists already is upserted.

    Plain creates are the fast path (PocketBase inserts them ~1.7x faster than upserts); a
    batch re-sent after a crash or an outage collides on an id and is written again as upserts.
    """
    rows = [dict(r) for r in rows]
    method: Literal["POST", "PUT"] = "POST"
    for _ in range(len(rows) + 2):
        try:
            pb.batch([BatchOp(method, "logs", id=r["id"], body=r) for r in rows])
            return
        except PocketBaseBatchFailed as exc:
            if method == "POST" and "id" in exc.field_errors:
                method = "PUT"
                continue
            if exc.index is None or not rows[exc.index].get("user_id"):
                raise
            bad = rows[exc.index]  # Its user is gone: keep the record, note whose it was.
            bad["metadata"] = {**(bad.get("metadata") or {}), "unknown_user_id": bad["user_id"]}
            bad["user_id"] = ""


def flush_logs(
    pb: PocketBase, buffer: LogBuffer, *, batch_size: int, max_seconds: float = 10.0
) -> FlushReport | None:
    """Drain the buffer into `logs`; None when another flusher holds the lock."""
    lock = buffer.lock(LOCK_SECONDS)
    if lock is None:
        return None
    lock.keep_alive()
    token = lock.token
    report, started = FlushReport(), time.monotonic()
    try:
        while time.monotonic() - started < max_seconds:
            rows = buffer.take(token, batch_size)
            if not rows:
                break
            _write(pb, rows)
            if not buffer.ack(token, len(rows)):
                break  # Lock lost: the next flusher re-sends these (harmless: upserts).
            report.written += len(rows)
            report.batches += 1
        dropped = buffer.pop_dropped()
        if dropped:  # Said through the buffer itself, so this notice is not lost either.
            report.dropped_reported = dropped
            buffer.push(
                {
                    "id": new_id(),
                    "level": "warn",
                    "msg": f"log buffer full: dropped {dropped} oldest low-severity records",
                    "ts": now_iso(),
                    "user_id": "",
                    "component": "logging_sink",
                    "metadata": {"dropped": dropped},
                }
            )
    finally:
        lock.release()
        report.seconds = time.monotonic() - started
    return report

"""Moving buffered records into `logs`: at least once, and never twice.

Records go in thousands at a time through the project's bulk route (`pocketbase.bulk`), which
inserts each by its own id once: re-sending a batch whose fate is unknown (PocketBase down,
flusher killed) cannot duplicate it. Records stay in Redis until PocketBase accepted them. A record
PocketBase refuses is never lost and never blocks the rest: one whose user was deleted is stored
without the relation (noting whose it was); any other refused record is replaced by an error
record that carries it, so an operator sees what was refused and why.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from fathom2loom.logsink.buffer import LogBuffer
from fathom2loom.logsink.records import new_id
from fathom2loom.pocketbase.bulk import BulkRefused
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.dates import now_iso

__all__ = ["BATCH_RECORDS", "FlushReport", "flush_logs"]

log = logging.getLogger(__name__)
LOCK_SECONDS = 10.0  # Renewed while the flush runs: a killed flusher blocks others briefly.
BATCH_RECORDS = 10000  # per take from Redis and per request to PocketBase


@dataclass
class FlushReport:
    written: int = 0
    batches: int = 0
    dropped_reported: int = 0
    seconds: float = 0.0


def _repaired(row: dict[str, Any], refused: BulkRefused) -> dict[str, Any]:
    """What to store instead of a refused record: never lose it, never let it block the rest."""
    if refused.field == "user_id" and row.get("user_id"):
        metadata = row.get("metadata")
        kept: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
        return {**row, "user_id": "", "metadata": {**kept, "unknown_user_id": row["user_id"]}}
    return {
        "id": row.get("id") if isinstance(row.get("id"), str) else new_id(),
        "level": "error",
        "msg": f"PocketBase refused a log record ({refused.field}: {refused.reason})",
        "ts": now_iso(),
        "user_id": "",
        "component": "logging_sink",
        "metadata": {"refused": json.dumps(row, default=str)[:100_000]},
    }


def _write(pb: PocketBase, rows: list[bytes] | list[dict[str, Any]]) -> None:
    """Insert the rows by their own ids (a row already there stays as it is).

    Rows still in their JSON text go as they are (the fast path); they are decoded only when
    PocketBase refused one and it has to be repaired.
    """
    if rows and isinstance(rows[0], bytes):
        raw = [r for r in rows if isinstance(r, bytes)]
        try:
            if pb.bulk.logs_json(raw):
                return
        except BulkRefused:
            pass
        rows = [json.loads(r) for r in raw]
    rows = [dict(r) for r in rows if isinstance(r, dict)]
    for _ in range(2 * len(rows) + 1):
        try:
            pb.bulk.logs(rows)
            return
        except BulkRefused as exc:
            rows[exc.index] = _repaired(rows[exc.index], exc)
    raise RuntimeError("log records kept being refused")  # Not reached: repairs are accepted.


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
            rows = buffer.take_raw(token, batch_size)
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

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
import sys
import time
from dataclasses import dataclass
from typing import Any

from fathom2loom.errors import PocketBaseRequestError
from fathom2loom.logsink.buffer import LogBuffer
from fathom2loom.logsink.records import notice
from fathom2loom.pocketbase.bulk import BulkRefused
from fathom2loom.pocketbase.client import PocketBase

__all__ = ["BATCH_RECORDS", "FlushReport", "flush_logs"]

log = logging.getLogger(__name__)
LOCK_SECONDS = 10.0  # Renewed while the flush runs: a killed flusher blocks others briefly.
BATCH_RECORDS = 10000  # per take from Redis (requests to PocketBase are split by size too)
REFUSED_EXCERPT = 100_000  # characters of a refused record kept in the error record
SHORT_EXCERPT = 2_000  # ... when the record was refused for its size


@dataclass
class FlushReport:
    written: int = 0
    batches: int = 0
    dropped_reported: int = 0
    seconds: float = 0.0


def _repaired(row: Any, field: str, reason: str, excerpt: int = REFUSED_EXCERPT) -> dict[str, Any]:
    """What to store instead of a refused record: never lose it, never let it block the rest."""
    if not isinstance(row, dict):
        row = {"unreadable": str(row)[:100_000]}
    if field == "user_id" and row.get("user_id"):
        metadata = row.get("metadata")
        kept: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
        return {**row, "user_id": "", "metadata": {**kept, "unknown_user_id": row["user_id"]}}
    return notice(
        "error",
        f"PocketBase refused a log record ({field}: {reason})",
        {"refused": json.dumps(row, default=str)[:excerpt]},
        record_id=row.get("id") if isinstance(row.get("id"), str) else None,
    )


def _decoded(raw: bytes) -> dict[str, Any]:
    try:
        row = json.loads(raw)
    except ValueError:
        row = None
    if isinstance(row, dict):
        return row
    return _repaired(raw[:REFUSED_EXCERPT].decode(errors="replace"), "record", "not a JSON object")


def _unreadable(exc: PocketBaseRequestError) -> bool:
    """A refusal that names no record: the request as a whole was too large or unreadable for
    PocketBase or a proxy in front of it. Smaller requests will pass."""
    return exc.status in (400, 413) and not isinstance(exc, BulkRefused)


def _write(pb: PocketBase, rows: list[bytes] | list[dict[str, Any]]) -> None:
    """Insert the rows by their own ids (a row already there stays as it is).

    Rows go as the JSON text they are (the fast path), decoded only when PocketBase refused one
    and it has to be repaired. A refusal that names no record (a request too large for a proxy,
    a body the route cannot read) halves the batch until the pieces pass; a single record refused
    that way is stored as an error record that carries an excerpt of it. Re-sending a piece that
    was written already is harmless: records are inserted once, by their ids.
    """
    raw = [r if isinstance(r, bytes) else _encoded(r) for r in rows]
    try:
        if pb.bulk.logs_json(raw):
            return
        _write_decoded(pb, [_decoded(r) for r in raw])
    except BulkRefused:
        _write_decoded(pb, [_decoded(r) for r in raw])
    except PocketBaseRequestError as exc:
        if not _unreadable(exc):
            raise
        if len(raw) > 1:
            log.warning("PocketBase refused %d log records at once (%s): halving", len(raw), exc)
            half = len(raw) // 2
            _write(pb, raw[:half])
            _write(pb, raw[half:])
            return
        # Alone and still refused: an error record with a short excerpt instead.
        repaired = _repaired(_decoded(raw[0]), "request", f"HTTP {exc.status}", SHORT_EXCERPT)
        try:
            _write_decoded(pb, [repaired])
        except PocketBaseRequestError as again:
            if not _unreadable(again):
                raise
            # Not even that passes (a proxy that takes no body of a few kB): never jam the
            # buffer for it; say so where the operator looks, outside the sink.
            print(
                f"fathom2loom: log record {repaired['id']} dropped: PocketBase refuses even its"
                f" excerpt ({again})",
                file=sys.stderr,
                flush=True,
            )


def _encoded(row: dict[str, Any]) -> bytes:
    return json.dumps(row, separators=(",", ":"), default=str).encode()


def _write_decoded(pb: PocketBase, rows: list[dict[str, Any]]) -> None:
    for _ in range(2 * len(rows) + 1):
        try:
            pb.bulk.logs(rows)
            return
        except BulkRefused as exc:
            rows[exc.index] = _repaired(rows[exc.index], exc.field, exc.reason)
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
                notice(
                    "warn",
                    f"log buffer full: dropped {dropped} oldest low-severity records",
                    {"dropped": dropped},
                )
            )
    finally:
        lock.release()
        report.seconds = time.monotonic() - started
    return report

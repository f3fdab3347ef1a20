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
        row = {"unreadable": str(row)[:REFUSED_EXCERPT]}
    if field == "user_id" and row.get("user_id"):
        metadata = row.get("metadata")
        kept: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
        return {**row, "user_id": "", "metadata": {**kept, "unknown_user_id": row["user_id"]}}
    keep_id = field != "id" and isinstance(row.get("id"), str)  # (a refused id gets a new one)
    return notice(
        "error",
        f"PocketBase refused a log record ({field}: {reason})",
        {"refused": json.dumps(row, default=str)[:excerpt]},
        record_id=row["id"] if keep_id else None,
    )


def _decoded(raw: bytes) -> dict[str, Any]:
    try:
        row = json.loads(raw)
    except ValueError:
        row = None
    if isinstance(row, dict):
        return row
    return _repaired(raw[:REFUSED_EXCERPT].decode(errors="replace"), "record", "not a JSON object")


def _encoded(row: dict[str, Any]) -> bytes:
    return json.dumps(row, separators=(",", ":"), default=str).encode()


def _unreadable(exc: PocketBaseRequestError) -> bool:
    """A refusal that names no record: the request as a whole was too large or unreadable for
    PocketBase or a proxy in front of it. Smaller requests will pass."""
    return exc.status in (400, 413) and not isinstance(exc, BulkRefused)


def _send(pb: PocketBase, piece: list[bytes]) -> None:
    """One request (the route; the batch API when PocketBase has no route)."""
    if not pb.bulk.logs_json(piece):
        pb.bulk.logs([_decoded(r) for r in piece])


def _dropped(row: bytes, why: str) -> None:
    """The last resort, for a record refused even as an error record: never jam the buffer for
    it; say so where the operator looks, outside the sink (which would refuse it again)."""
    print(
        f"fathom2loom: a log record was dropped: {why}: {row[:SHORT_EXCERPT]!r}",
        file=sys.stderr,
        flush=True,
    )


def _write(pb: PocketBase, rows: list[bytes] | list[dict[str, Any]]) -> None:
    """Insert the rows by their own ids (a row already there stays as it is).

    Rows go as the JSON text they are (the fast path). A record PocketBase refuses by name is
    replaced by its repair (`_repaired`) and the piece is sent again; a refusal that names no
    record (a request too large for a proxy, a body the route cannot read) halves the piece
    until the pieces pass, and a single record refused that way is stored as an error record
    with a short excerpt. A record refused twice after repair is dropped with a line on stderr:
    nothing can jam the buffer. Re-sending a piece that was written already is harmless: records
    are inserted once, by their ids.
    """
    pieces = [[r if isinstance(r, bytes) else _encoded(r) for r in rows]]
    repairs: dict[bytes, int] = {}  # a repaired record's text -> how often it was refused
    while pieces:
        piece = pieces.pop()
        try:
            _send(pb, piece)
        except BulkRefused as exc:
            refused = piece[exc.index]
            if repairs.get(refused, 0) >= 2:
                _dropped(refused, f"refused again ({exc.field}: {exc.reason})")
                del piece[exc.index]
            else:
                repair = _encoded(_repaired(_decoded(refused), exc.field, exc.reason))
                repairs[repair] = repairs.get(refused, 0) + 1
                piece[exc.index] = repair
            if piece:
                pieces.append(piece)
        except PocketBaseRequestError as exc:
            if not _unreadable(exc):
                raise
            if len(piece) > 1:
                log.warning(
                    "PocketBase refused %d log records at once (%s): halving", len(piece), exc
                )
                half = len(piece) // 2
                pieces += [piece[half:], piece[:half]]
            elif repairs.get(piece[0], 0) >= 2:
                _dropped(piece[0], f"too large even as an excerpt ({exc})")
            else:
                short = _repaired(
                    _decoded(piece[0]), "request", f"HTTP {exc.status}", SHORT_EXCERPT
                )
                repair = _encoded(short)
                repairs[repair] = repairs.get(piece[0], 0) + 2  # the excerpt is the last try
                pieces.append([repair])


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

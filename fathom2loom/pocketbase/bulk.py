"""Bulk reads and writes through the project's PocketBase routes (pb_hooks/bulk.pb.js), with the
records and batch APIs as the fallback for a PocketBase that runs without the hooks.

The route writes a whole list in one SQL statement after checking every value as the collection
would (50-70x the batch API for positions, ~20x one request per record for logs). A refused list
raises `BulkRefused` naming the index and field; nothing was written then. The dispatcher's view
of the active rows comes in one answer built by SQLite (~20x faster than paging through the
records API). When the routes are missing (404, an older deployment) the same work goes through
the public APIs, with one warning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Literal

from fathom2loom.errors import (
    BulkRefused,
    PocketBaseBatchFailed,
    PocketBaseNotFound,
    PocketBaseValidation,
)
from fathom2loom.pocketbase import answers
from fathom2loom.pocketbase.client import BatchOp, PocketBase, RawJSON, Record

__all__ = ["BulkRefused", "BulkRoutes"]

log = logging.getLogger(__name__)
ROUTE = "/api/fathom2loom/bulk"
CHUNK = 20_000  # records per request
# Bytes per request of log records: well below the routes' body limit (pb_hooks/bulk.pb.js), and
# below what a proxy in front of PocketBase is likely to take (a refusal halves the batch).
CHUNK_BYTES = 4 << 20


class BulkRoutes:
    """Positions and log records, many per request; the active queue rows in one."""

    def __init__(self, pb: PocketBase) -> None:
        self.pb = pb
        self.route_missing = False

    def _missing(self, kind: str) -> None:
        self.route_missing = True
        log.warning(
            "PocketBase has no bulk routes (pb_hooks/ not loaded, or older than this service):"
            " %s go through the public API, much slower",
            kind,
        )

    def active_rows(self, fields: Sequence[str]) -> list[Record] | None:
        """The pending and processing queue rows (ascending id) with `fields` (the route checks
        each against the queue collection's schema), or None without the route."""
        if self.route_missing:
            return None
        try:
            body = self.pb.request(
                "GET", f"{ROUTE}/active", params={"fields": ",".join(fields)}, idempotent=True
            )
        except PocketBaseNotFound:
            self._missing("queue reads")
            return None
        return answers.items(body, f"GET {ROUTE}/active")

    def _post(self, kind: str, body: dict[str, Any] | RawJSON, offset: int) -> bool:
        """True when the route took it; False when there is no route (use the fallback)."""
        if self.route_missing:
            return False
        try:
            self.pb.request("POST", f"{ROUTE}/{kind}", json=body, idempotent=True)
            return True
        except PocketBaseNotFound:
            self._missing(f"{kind} writes")
            return False
        except PocketBaseValidation as exc:
            index = exc.data.get("index")
            if isinstance(index, int) and index >= 0:
                raise BulkRefused(
                    offset + index, str(exc.data.get("field")), str(exc.data.get("reason"))
                ) from exc
            raise

    def positions(self, changes: dict[str, int]) -> int | None:
        """Set each row's position; rows deleted meanwhile are passed over. Returns the count,
        or None without the route (the queue's owner then writes them through the batch API)."""
        pairs = [[row_id, position] for row_id, position in changes.items()]
        for start in range(0, len(pairs), CHUNK):
            chunk = pairs[start : start + CHUNK]
            if not self._post("positions", {"positions": chunk}, start):
                return None
        return len(pairs)

    def logs_json(self, records: Sequence[bytes]) -> bool:
        """Log records that are JSON text already, sent as they are (no decoding, no encoding),
        at most `CHUNK` records and `CHUNK_BYTES` per request.

        False when there is no route: decode them and use `logs` (the batch API).
        """
        start = 0
        for end in _byte_chunks(records, CHUNK_BYTES):
            body = RawJSON(b'{"records":[' + b",".join(records[start:end]) + b"]}")
            if not self._post("logs", body, start):
                return False
            start = end
        return True

    def logs(self, records: Sequence[dict[str, Any]]) -> None:
        """Insert log records by their own ids; a record already there is left as it is."""
        encoded = [json.dumps(r, separators=(",", ":"), default=str).encode() for r in records]
        if not self.logs_json(encoded):
            self._batch_logs(list(records))

    # -- the batch API, for a PocketBase without the hooks --------------------------------------

    def _batch_logs(self, records: list[dict[str, Any]]) -> None:
        """Creates first (the fast path); a batch re-sent after a crash collides and is upserted."""
        method: Literal["POST", "PUT"] = "POST"
        while True:
            try:
                self.pb.batch([BatchOp(method, "logs", id=r["id"], body=r) for r in records])
                return
            except PocketBaseBatchFailed as exc:
                if method == "POST" and "id" in exc.field_errors:
                    method = "PUT"
                    continue
                if exc.index is None:
                    raise
                field = next(iter(exc.field_errors), "record")
                raise BulkRefused(exc.index, field, exc.cause) from exc


def _byte_chunks(records: Sequence[bytes], max_bytes: int) -> list[int]:
    """The ends of consecutive slices of `records`, each within `CHUNK` records and
    `max_bytes` (a record larger than that alone in its slice)."""
    ends: list[int] = []
    size = count = 0
    for index, record in enumerate(records):
        if count and (size + len(record) + 1 > max_bytes or count == CHUNK):
            ends.append(index)
            size = count = 0
        size += len(record) + 1
        count += 1
    if count:
        ends.append(len(records))
    return ends

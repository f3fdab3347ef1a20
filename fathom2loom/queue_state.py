"""Reading and writing one `queue` row the way the design allows.

PocketBase has no conditional update, so every write that must not undo a user's cancel re-reads
the row first and skips the write when it is `cancelled`. The window between the two requests is
milliseconds; a cancel that lands in it is seen at the next chunk.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fathom2loom.errors import PocketBaseNotFound
from fathom2loom.pocketbase.client import PocketBase, Record

__all__ = ["FINAL_STATUSES", "QueueRows", "now_iso"]

COLLECTION = "queue"
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


def now_iso() -> str:
    """Now, in PocketBase's date format."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


class QueueRows:
    def __init__(self, pb: PocketBase) -> None:
        self.pb = pb

    def get(self, row_id: str) -> Record | None:
        try:
            return self.pb.get(COLLECTION, row_id)
        except PocketBaseNotFound:
            return None

    def status(self, row_id: str) -> str | None:
        row = self.get(row_id)
        return None if row is None else str(row["status"])

    def save(self, row_id: str, **fields: Any) -> None:
        """Progress and bookkeeping fields; never the status."""
        self.pb.update(COLLECTION, row_id, {**fields, "heartbeat_at": now_iso()})

    def set_unless_cancelled(self, row_id: str, **fields: Any) -> bool:
        """Write `fields` unless the row was cancelled (or deleted); True when written."""
        row = self.get(row_id)
        if row is None or row["status"] == "cancelled":
            return False
        self.pb.update(COLLECTION, row_id, {**fields, "heartbeat_at": now_iso()})
        return True

"""Which realtime events on `queue` mean new work for the dispatcher.

PocketBase's update events carry the record as it is now, not what changed. Most updates change
nothing the dispatcher cares about (a position, a transfer's progress, a worker taking its row),
and a sync that woke on them would wake itself: every sync writes positions. What means new work
is a row created, one set back to pending (a retry, a transfer handing its row back), cancelled,
or ended (a slot freed). So the status last seen of each active row is kept, and an event means
new work when the status is new. The first event of a row not seen since start-up counts as new:
after a restart one extra sync may follow, never a loop.
"""

from __future__ import annotations

from typing import Any

from fathom2loom.queue_rows import Status

__all__ = ["NewWorkFilter"]

ACTIVE = (Status.PENDING, Status.PROCESSING)


class NewWorkFilter:
    """Feed it every queue event; it answers whether a sync should follow."""

    def __init__(self) -> None:
        self._statuses: dict[str, str] = {}  # active rows only: ended rows are forgotten

    def __len__(self) -> int:
        return len(self._statuses)

    def means_new_work(self, action: str, record: dict[str, Any]) -> bool:
        row_id, status = str(record.get("id")), str(record.get("status"))
        before = self._statuses.pop(row_id, None)
        if action == "delete":
            return before is not None
        if status in ACTIVE:
            self._statuses[row_id] = status
        # A worker taking its row (→ processing) is the outcome of a sync, not new work.
        return status != before and status != Status.PROCESSING

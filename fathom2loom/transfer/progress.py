"""An upload's progress, told to the row and the task, and the two reasons to stop it early."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fathom2loom.queue_rows import QueueRow, QueueStore, Status

__all__ = ["CANCEL_CHECK_SECONDS", "Progress"]

CANCEL_CHECK_SECONDS = 1.0


@dataclass
class Progress:
    """Throttled progress writes (row and task state) and the stop checks made before each chunk.

    A cancel is seen within `CANCEL_CHECK_SECONDS` of the user's write; a lost lease (another
    worker may own the row now, or Redis is unreachable) at once.
    """

    rows: QueueStore
    row: QueueRow
    total: int
    interval: float
    lease_lost: Callable[[], bool]
    on_progress: Callable[[int, int], None]
    last_write: float = 0.0
    last_check: float = 0.0
    stopped_by: str = field(default="")

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last_write < self.interval and done < self.total:
            return
        self.last_write = now
        self.rows.save(self.row, bytes_done=done, bytes_total=self.total)
        self.on_progress(done, self.total)

    def should_stop(self) -> bool:
        if self.lease_lost():
            self.stopped_by = "lease"
            return True
        now = time.monotonic()
        if now - self.last_check >= CANCEL_CHECK_SECONDS:
            self.last_check = now
            if self.rows.status(self.row.id) in (None, Status.CANCELLED):
                self.stopped_by = "cancel"
                return True
        return False

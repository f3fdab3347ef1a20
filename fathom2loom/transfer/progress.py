"""An upload's progress, told to the row and the task, and the reasons to stop it early."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fathom2loom.transfer.run import RunControl

__all__ = ["CANCEL_CHECK_SECONDS", "Progress"]

CANCEL_CHECK_SECONDS = 1.0


@dataclass
class Progress:
    """Throttled progress writes (row and task state) and the stop checks made before each chunk.

    A cancel is seen within `CANCEL_CHECK_SECONDS` of the user's write; a lost lease (another
    worker may own the row now, or Redis is unreachable) and a worker shutting down at once.
    """

    save: Callable[[dict[str, Any]], None]  # the row's changes, written by the run
    cancelled: Callable[[], bool]  # the row was cancelled or deleted meanwhile
    total: int
    interval: float
    control: RunControl
    last_write: float = 0.0
    last_check: float = 0.0
    stopped_by: str = field(default="")

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last_write < self.interval and done < self.total:
            return
        self.last_write = now
        self.save({"bytes_done": done, "bytes_total": self.total})
        self.control.on_progress(done, self.total)

    def should_stop(self) -> bool:
        if self.control.lease_lost():
            self.stopped_by = "lease"
            return True
        if self.control.shutting_down():
            self.stopped_by = "shutdown"
            return True
        now = time.monotonic()
        if now - self.last_check >= CANCEL_CHECK_SECONDS:
            self.last_check = now
            if self.cancelled():
                self.stopped_by = "cancel"
                return True
        return False

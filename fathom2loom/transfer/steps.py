"""What one run of a transfer ends with: done (with an outcome) or wait (how long, and why)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fathom2loom.errors import RowFailed

__all__ = ["Done", "RowFailed", "Step", "Wait"]


@dataclass(frozen=True)
class Done:
    """The run is over. `status` is the row's final status, or what stopped the run early:
    `gone` (the row was deleted) or `stopped` (the lease was lost; the row is left as it is)."""

    status: str
    loom_video_id: str = ""

    def result(self, row_id: str) -> dict[str, Any]:
        """The Celery result: ids and a status, never a key or a URL."""
        outcome: dict[str, Any] = {"row_id": row_id, "status": self.status}
        if self.loom_video_id:
            outcome["loom_video_id"] = self.loom_video_id
        return outcome


@dataclass(frozen=True)
class Wait:
    """The row must wait `seconds` before its next run; `reason` is what the user reads."""

    seconds: float
    reason: str

    def result(self, row_id: str) -> dict[str, Any]:
        return {"row_id": row_id, "status": "waiting", "seconds": round(self.seconds, 1)}


Step = Done | Wait

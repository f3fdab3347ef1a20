"""A `queue` row, typed: its statuses, its fields, and how changes to it are written.

The rows are read and written by their one owner, `queue_store.QueueStore`; everything else sees
them as `QueueRow`. A transfer's own bookkeeping (fresh downloads asked for, polls, the Loom
video generation, whether a run is open) is one JSON field, `transfer_state`, read as
`TransferState`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from fathom2loom.pocketbase.client import Record
from fathom2loom.pocketbase.dates import now_iso, parse_date, seconds_until

__all__ = [
    "ACTIVE",
    "COLLECTION",
    "DISPATCH_FIELDS",
    "FINAL",
    "QueueRow",
    "Status",
    "TransferState",
    "encode_changes",
]

COLLECTION = "queue"


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = frozenset({Status.PENDING, Status.PROCESSING})
FINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
# What the dispatcher reads of every active row (a test checks them against the migrations).
DISPATCH_FIELDS = (
    "id",
    "user_id",
    "status",
    "queued_at",
    "created",
    "position",
    "next_attempt_at",
    "completed_at",
    "error_message",
)


@dataclass
class TransferState:
    """Counters and marks a transfer keeps between its runs (the `transfer_state` JSON field)."""

    open_run: bool = False  # a run started and has not yet recorded how it ended
    download_requests: int = 0  # fresh Fathom downloads asked for since the row (re)started
    render_polls: int = 0
    render_started_at: str = ""
    loom_generation: int = 0  # part of the Loom idempotency key; a new one means a new video
    loom_polls: int = 0
    check_video: bool = False  # the kept Loom video may have failed or gone: look before reuse
    last_gone: str = ""  # why the last download or video had to be made again
    outage_runs: int = 0  # runs stopped by PocketBase being down, not counted as attempts

    @classmethod
    def from_json(cls, value: Any) -> TransferState:
        """Tolerant: unknown keys are dropped and wrong types fall back to the defaults."""
        if not isinstance(value, dict):
            return cls()
        state = cls()
        for item in fields(cls):
            raw = value.get(item.name)
            if raw is not None and type(raw) is type(getattr(state, item.name)):
                setattr(state, item.name, raw)
        return state

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class QueueRow:
    """A typed view of one `queue` record."""

    id: str
    user_id: str
    meeting_id: str
    status: Status
    position: int = 0
    queued_at: str = ""
    started_at: str = ""
    completed_at: str = ""
    error_message: str = ""
    loom_video_id: str = ""
    loom_url: str = ""
    fathom_download_id: str = ""
    attempts: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    next_attempt_at: str = ""
    wait_reason: str = ""
    recorded_at: str = ""  # when the recording started, if whoever queued it knew
    state: TransferState = field(default_factory=TransferState)

    @classmethod
    def from_record(cls, record: Record) -> QueueRow:
        def text(name: str) -> str:
            return str(record.get(name) or "")

        def number(name: str) -> int:
            value = record.get(name)
            return int(value) if isinstance(value, int | float) else 0

        return cls(
            id=str(record["id"]),
            user_id=text("user_id"),
            meeting_id=text("meeting_id"),
            status=Status(record["status"]),
            position=number("position"),
            queued_at=text("queued_at") or text("created"),
            started_at=text("started_at"),
            completed_at=text("completed_at"),
            error_message=text("error_message"),
            loom_video_id=text("loom_video_id"),
            loom_url=text("loom_url"),
            fathom_download_id=text("fathom_download_id"),
            attempts=number("attempts"),
            bytes_done=number("bytes_done"),
            bytes_total=number("bytes_total"),
            next_attempt_at=text("next_attempt_at"),
            wait_reason=text("wait_reason"),
            recorded_at=text("recorded_at"),
            state=TransferState.from_json(record.get("transfer_state")),
        )

    def due_in(self) -> float:
        """Seconds until a waiting row may run again (0 when it may run now)."""
        return max(0.0, seconds_until(self.next_attempt_at))

    def waiting_at(self, now: datetime) -> bool:
        """A processing row whose recorded wait is not over yet at `now`."""
        due = parse_date(self.next_attempt_at)
        return self.status == Status.PROCESSING and due is not None and due > now

    @property
    def has_old_end(self) -> bool:
        """A pending row that still shows how its previous run ended (a retried row)."""
        return self.status == Status.PENDING and bool(self.completed_at or self.error_message)


def encode_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """`QueueRow` attribute names and values as PocketBase fields, stamped with a heartbeat."""
    body = {
        ("transfer_state" if name == "state" else name): (
            value.to_json() if isinstance(value, TransferState) else value
        )
        for name, value in changes.items()
    }
    return {**body, "heartbeat_at": now_iso()}

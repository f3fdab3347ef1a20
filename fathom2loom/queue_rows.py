"""The `queue` collection: its statuses, its fields, and the writes the design allows.

Every module that reads or writes a queue row goes through here, so the field names, the status
values and the rule "a cancelled row is never overwritten" live in one place.

PocketBase has no conditional update, so every write that must not undo a user's cancel re-reads
the row first and skips the write when it is `cancelled`. The window between the two requests is
milliseconds; a cancel that lands in it is seen at the transfer's next chunk.

A transfer's own bookkeeping (fresh downloads asked for, polls, the Loom video generation, whether
a run is open) is one JSON field, `transfer_state`, read as `TransferState`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from fathom2loom.errors import PocketBaseNotFound
from fathom2loom.pocketbase.client import PocketBase, Record
from fathom2loom.pocketbase.dates import now_iso, seconds_until

__all__ = [
    "ACTIVE",
    "COLLECTION",
    "DISPATCH_FIELDS",
    "FINAL",
    "QueueRow",
    "QueueStore",
    "Status",
    "TransferState",
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
# What the dispatcher reads of every active row.
DISPATCH_FIELDS = (
    "id,user_id,status,queued_at,created,position,next_attempt_at,completed_at,error_message"
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


def _encode(changes: dict[str, Any]) -> dict[str, Any]:
    """`QueueRow` attribute names and values as PocketBase fields, stamped with a heartbeat."""
    body = {
        ("transfer_state" if name == "state" else name): (
            value.to_json() if isinstance(value, TransferState) else value
        )
        for name, value in changes.items()
    }
    return {**body, "heartbeat_at": now_iso()}


class QueueStore:
    """Reads and writes of `queue` rows, as the transfer may make them."""

    def __init__(self, pb: PocketBase) -> None:
        self.pb = pb

    def get(self, row_id: str) -> QueueRow | None:
        try:
            return QueueRow.from_record(self.pb.get(COLLECTION, row_id))
        except PocketBaseNotFound:
            return None

    def status(self, row_id: str) -> Status | None:
        row = self.get(row_id)
        return None if row is None else row.status

    def save(self, row: QueueRow, **changes: Any) -> None:
        """Write `changes` (`QueueRow` attribute names) and apply them to `row` in memory.

        Status changes go through `save_unless_cancelled`."""
        self.pb.update(COLLECTION, row.id, _encode(changes))
        for name, value in changes.items():
            setattr(row, name, value)

    def save_unless_cancelled(self, row: QueueRow, **changes: Any) -> bool:
        """Write `changes` unless the row was cancelled or deleted meanwhile; True when written."""
        current = self.status(row.id)
        if current is None or current == Status.CANCELLED:
            return False
        self.save(row, **changes)
        return True

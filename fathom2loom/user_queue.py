"""A user's meetings as an operator (or a script) sees and queues them; the CLI is built on
this, and on `QueueStore` for cancel and retry.

The same moves a user may make through PocketBase's API, with the same limits: a meeting is
queued once while a row for it is active (PocketBase's unique index says so too).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fathom2loom.errors import QueueRefused
from fathom2loom.meeting_ids import InvalidMeetingId, canonical_meeting_id
from fathom2loom.providers.fathom import FathomClient, Meeting
from fathom2loom.queue_rows import ACTIVE, QueueRow, Status
from fathom2loom.queue_store import QueueStore

__all__ = ["EnqueueReport", "MeetingState", "QueueRefused", "enqueue", "meeting_states"]


@dataclass(frozen=True)
class MeetingState:
    meeting: Meeting
    state: str  # "moved", "queued" (pending or processing), "failed", "cancelled", "not moved"
    loom_url: str = ""


@dataclass
class EnqueueReport:
    queued: list[str] = field(default_factory=list)  # row ids
    already_queued: list[str] = field(default_factory=list)  # meeting ids with an active row
    already_moved: list[str] = field(default_factory=list)  # meeting ids with a completed row


def _latest_by_meeting(rows: Iterable[QueueRow]) -> dict[str, QueueRow]:
    """Each meeting's most telling row: an active one, else a completed one, else the newest."""
    rank = {Status.PENDING: 0, Status.PROCESSING: 0, Status.COMPLETED: 1}
    chosen: dict[str, QueueRow] = {}
    for row in rows:  # Newest first.
        try:  # Rows stored before ids were made canonical may have leading zeros.
            meeting = canonical_meeting_id(row.meeting_id)
        except InvalidMeetingId:
            meeting = row.meeting_id
        current = chosen.get(meeting)
        if current is None or rank.get(row.status, 2) < rank.get(current.status, 2):
            chosen[meeting] = row
    return chosen


_STATE = {
    Status.COMPLETED: "moved",
    Status.PENDING: "queued",
    Status.PROCESSING: "queued",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
}


def meeting_states(
    queue: QueueStore, fathom: FathomClient, user_id: str, *, limit: int, since: datetime | None
) -> Iterator[MeetingState]:
    """The user's Fathom recordings, newest first, each with where it stands here."""
    rows = _latest_by_meeting(queue.of_user(user_id))
    filters: dict[str, Any] = {"created_after": since} if since else {}
    for count, meeting in enumerate(fathom.meetings(**filters)):
        if count >= limit:
            return
        row = rows.get(str(meeting.recording_id))
        if row is None:
            yield MeetingState(meeting, "not moved")
        else:
            yield MeetingState(meeting, _STATE.get(row.status, "not moved"), row.loom_url)


def enqueue(
    queue: QueueStore,
    user_id: str,
    meetings: Iterable[str | Meeting],
    *,
    skip_moved: bool = False,
) -> EnqueueReport:
    """Queue the meetings not already queued (nor, with `skip_moved`, already moved).

    A `Meeting` from Fathom's list also gives the row the recording's start, which lets the
    transfer find the meeting's title and notes with one narrow Fathom query.
    """
    wanted = list(meetings)
    ids: list[str] = []
    for item in wanted:
        try:
            ids.append(
                canonical_meeting_id(item.recording_id if isinstance(item, Meeting) else item)
            )
        except InvalidMeetingId as exc:
            raise QueueRefused(f"{exc}: nothing was queued") from exc
    report = EnqueueReport()
    rows = _latest_by_meeting(queue.of_user(user_id))
    for item, meeting_id in zip(wanted, ids, strict=True):
        row = rows.get(meeting_id)
        if row is not None and row.status in ACTIVE:
            report.already_queued.append(meeting_id)
            continue
        if skip_moved and row is not None and row.status == Status.COMPLETED:
            report.already_moved.append(meeting_id)
            continue
        recorded = item.recording_start_time if isinstance(item, Meeting) else None
        report.queued.append(queue.add(user_id, meeting_id, recorded_at=recorded).id)
    return report

"""A user's transfers as an operator (or a script) handles them: queue, look, cancel, retry.

The same moves a user may make through PocketBase's API, with the same limits: a meeting is
queued once while a row for it is active (PocketBase's unique index says so too), only pending or
processing rows are cancelled, only failed ones retried. The CLI is built on this.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fathom2loom.errors import QueueRefused
from fathom2loom.meeting_ids import InvalidMeetingId, canonical_meeting_id
from fathom2loom.pocketbase.client import PocketBase, Record
from fathom2loom.pocketbase.dates import now_iso, pb_date
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.providers.fathom import FathomClient, Meeting
from fathom2loom.queue_rows import ACTIVE, COLLECTION, Status

__all__ = [
    "EnqueueReport",
    "MeetingState",
    "QueueRefused",
    "cancel_row",
    "enqueue",
    "meeting_states",
    "retry_rows",
    "user_rows",
]


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


def user_rows(pb: PocketBase, user_id: str | None = None) -> list[Record]:
    """A user's rows (all users' when None), newest first."""
    where = pb_filter("user_id = {:u}", u=user_id) if user_id else None
    return list(pb.list_all(COLLECTION, filter=where, sort="-queued_at,-created", per_page=500))


def _latest_by_meeting(rows: Iterable[Record]) -> dict[str, Record]:
    """Each meeting's most telling row: an active one, else a completed one, else the newest."""
    rank = {Status.PENDING: 0, Status.PROCESSING: 0, Status.COMPLETED: 1}
    chosen: dict[str, Record] = {}
    for row in rows:  # Newest first.
        try:  # Rows stored before ids were made canonical may have leading zeros.
            meeting = canonical_meeting_id(row["meeting_id"])
        except InvalidMeetingId:
            meeting = row["meeting_id"]
        current = chosen.get(meeting)
        if current is None or rank.get(row["status"], 2) < rank.get(current["status"], 2):
            chosen[meeting] = row
    return chosen


def meeting_states(
    pb: PocketBase, fathom: FathomClient, user_id: str, *, limit: int, since: datetime | None
) -> Iterator[MeetingState]:
    """The user's Fathom recordings, newest first, each with where it stands here."""
    rows = _latest_by_meeting(user_rows(pb, user_id))
    filters: dict[str, Any] = {"created_after": since} if since else {}
    for count, meeting in enumerate(fathom.meetings(**filters)):
        if count >= limit:
            return
        row = rows.get(str(meeting.recording_id))
        status = row["status"] if row else None
        state = (
            {
                Status.COMPLETED: "moved",
                Status.PENDING: "queued",
                Status.PROCESSING: "queued",
                Status.FAILED: "failed",
                Status.CANCELLED: "cancelled",
            }.get(status, "not moved")
            if status
            else "not moved"
        )
        yield MeetingState(meeting, state, (row or {}).get("loom_url") or "")


def enqueue(
    pb: PocketBase,
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
    rows = _latest_by_meeting(user_rows(pb, user_id))
    for item, meeting_id in zip(wanted, ids, strict=True):
        row = rows.get(meeting_id)
        if row is not None and row["status"] in ACTIVE:
            report.already_queued.append(meeting_id)
            continue
        if skip_moved and row is not None and row["status"] == Status.COMPLETED:
            report.already_moved.append(meeting_id)
            continue
        body: dict[str, Any] = {
            "user_id": user_id,
            "meeting_id": meeting_id,
            "status": Status.PENDING,
            "queued_at": now_iso(),
        }
        if isinstance(item, Meeting):
            body["recorded_at"] = pb_date(item.recording_start_time)
        created = pb.create(COLLECTION, body)
        report.queued.append(str(created["id"]))
    return report


def cancel_row(pb: PocketBase, row_id: str) -> Record:
    """Cancel a pending or processing row (its transfer stops at the next chunk)."""
    row = pb.get(COLLECTION, row_id)
    if row["status"] not in ACTIVE:
        raise QueueRefused(
            f"row {row_id} is {row['status']}: only pending or processing rows can be cancelled"
        )
    return pb.update(COLLECTION, row_id, {"status": Status.CANCELLED, "position": 0})


def retry_rows(pb: PocketBase, row_ids: Iterable[str]) -> list[Record]:
    """Set failed rows back to pending; the dispatcher clears their old end and sends them."""
    retried = []
    for row_id in row_ids:
        row = pb.get(COLLECTION, row_id)
        if row["status"] != Status.FAILED:
            raise QueueRefused(f"row {row_id} is {row['status']}: only failed rows can be retried")
        # To the back of the line, as a user's own retry goes (pb_hooks/queue.pb.js).
        body = {"status": Status.PENDING, "queued_at": now_iso()}
        retried.append(pb.update(COLLECTION, row_id, body))
    return retried

"""The one way a meeting enters the queue by itself: once, ever.

A webhook may be delivered several times, the catch-up poll sees meetings the webhook already
brought, and a user may have moved, cancelled or retried a meeting by hand: a meeting that has any
row at all is left alone. Two paths racing on a new meeting meet PocketBase's unique index on
active rows, and the loser leaves it alone too.
"""

from __future__ import annotations

from fathom2loom.errors import PocketBaseValidation
from fathom2loom.meeting_ids import canonical_meeting_id
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.dates import now_iso, pb_date
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.providers.fathom import Meeting
from fathom2loom.queue_rows import COLLECTION, Status

__all__ = ["enqueue_new_meeting"]


def enqueue_new_meeting(pb: PocketBase, user_id: str, meeting: Meeting) -> str | None:
    """Queue the meeting unless it has a row already; the new row's id, or None."""
    meeting_id = canonical_meeting_id(meeting.recording_id)
    where = pb_filter("user_id = {:u} && meeting_id = {:m}", u=user_id, m=meeting_id)
    if pb.first(COLLECTION, filter=where) is not None:
        return None
    try:
        created = pb.create(
            COLLECTION,
            {
                "user_id": user_id,
                "meeting_id": meeting_id,
                "status": Status.PENDING,
                "queued_at": now_iso(),
                "recorded_at": pb_date(meeting.recording_start_time),
            },
        )
    except PocketBaseValidation:
        if pb.first(COLLECTION, filter=where) is not None:
            return None  # Queued by the other path a moment ago (the unique index on active rows).
        raise  # Refused for another reason: said, never taken for "queued".
    return str(created["id"])

"""The one way a meeting enters the queue by itself: once, ever.

A webhook may be delivered several times, the catch-up poll sees meetings the webhook already
brought, and a user may have moved, cancelled or retried a meeting by hand: a meeting that has any
row at all is left alone. Two paths racing on a new meeting meet PocketBase's unique index on
active rows, and the loser leaves it alone too.
"""

from __future__ import annotations

from fathom2loom.meeting_ids import canonical_meeting_id
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.providers.fathom import Meeting
from fathom2loom.queue_store import QueueStore

__all__ = ["enqueue_new_meeting"]


def enqueue_new_meeting(pb: PocketBase, user_id: str, meeting: Meeting) -> str | None:
    """Queue the meeting unless it has a row already; the new row's id, or None."""
    meeting_id = canonical_meeting_id(meeting.recording_id)
    row = QueueStore(pb).add_once(user_id, meeting_id, recorded_at=meeting.recording_start_time)
    return None if row is None else row.id

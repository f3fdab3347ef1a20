"""What the Loom video says about its meeting: the meeting's title, and a description with the
Fathom summary, the action items and a link back to Fathom.

Fathom has no get-by-id for meetings. When the row knows when the recording started
(`recorded_at`), one `/meetings` query over that time window finds it; otherwise the newest
pages are searched, a bounded number. The summary is one heavy call (30 a minute per key): when
the budget is spent the transfer waits for it (`RateLimited`), since the title and description
are set once, when the video is made. Anything else that goes wrong with the notes costs the
notes, never the transfer: the video is then titled "Fathom recording N".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fathom2loom.errors import ProviderError, RateLimited
from fathom2loom.providers.fathom_models import Meeting
from fathom2loom.transfer.ports import FathomPort

__all__ = ["DESCRIPTION_MAX", "TITLE_MAX", "MeetingNotes", "meeting_notes"]

log = logging.getLogger(__name__)
TITLE_MAX, DESCRIPTION_MAX = 200, 5000  # The Loom contract's field sizes.
SEARCH_PAGES = 5
WINDOW_BEFORE, WINDOW_AFTER = timedelta(hours=1), timedelta(days=2)


@dataclass(frozen=True)
class MeetingNotes:
    title: str
    description: str


def _find(fathom: FathomPort, recording: int, recorded_at: datetime | None) -> Meeting | None:
    filters: dict[str, Any] = {"include_action_items": True}
    if recorded_at is not None:  # A meeting is created in Fathom once its recording has ended.
        filters |= {
            "created_after": recorded_at - WINDOW_BEFORE,
            "created_before": recorded_at + WINDOW_AFTER,
        }
    for page, meetings in enumerate(fathom.meeting_pages(**filters), start=1):
        for meeting in meetings:
            if meeting.recording_id == recording:
                return meeting
        if recorded_at is None and page >= SEARCH_PAGES:
            break
    return None


def _summary(fathom: FathomPort, recording: int) -> str:
    try:
        body = fathom.summary(recording)
    except RateLimited:
        raise
    except ProviderError as exc:
        log.info("recording %s: no summary from Fathom (%s)", recording, exc)
        return ""
    text = body.get("markdown_formatted")
    return text.strip() if isinstance(text, str) else ""


def _action_items(meeting: Meeting) -> list[str]:
    lines = []
    for item in meeting.action_items or []:
        if not isinstance(item, dict) or not isinstance(item.get("description"), str):
            continue
        assignee = item.get("assignee")
        name = assignee.get("name") if isinstance(assignee, dict) else None
        who = f" ({name})" if isinstance(name, str) else ""
        done = "x" if item.get("completed") is True else " "
        lines.append(f"- [{done}] {item['description'].strip()}{who}")
    return lines


def _fit(parts: list[str], footer: list[str]) -> str:
    """Join, keeping the footer whole and cutting the summary (the first part) to fit."""
    tail = "\n\n".join(p for p in [*parts[1:], "\n".join(footer)] if p)
    room = DESCRIPTION_MAX - len(tail) - 2
    head = parts[0] if len(parts[0]) <= room else parts[0][: max(0, room - 1)].rstrip() + "…"
    return "\n\n".join(p for p in (head, tail) if p)[:DESCRIPTION_MAX]


def meeting_notes(fathom: FathomPort, recording: int, recorded_at: datetime | None) -> MeetingNotes:
    """The title and description for the recording's Loom video (`RateLimited` to wait)."""
    footer = [f"Moved from Fathom by fathom2loom (recording {recording})."]
    try:
        meeting = _find(fathom, recording, recorded_at)
    except RateLimited:
        raise
    except ProviderError as exc:
        log.info("recording %s: no meeting details from Fathom (%s)", recording, exc)
        meeting = None
    if meeting is None:
        return MeetingNotes(f"Fathom recording {recording}", footer[0])
    items = _action_items(meeting)
    parts = [_summary(fathom, recording)]
    if items:
        parts.append("Action items\n" + "\n".join(items))
    footer.insert(0, f"In Fathom: {meeting.share_url}")
    title = (meeting.title or meeting.meeting_title or f"Fathom recording {recording}").strip()
    return MeetingNotes(title[:TITLE_MAX], _fit(parts, footer))

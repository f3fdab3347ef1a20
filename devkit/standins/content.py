"""Deterministic content for the stand-ins: recording bytes of any size, and meeting documents.

Recording bytes are computed, not stored, so a test can stream a 1 GiB file without holding it in
memory, and any byte range can be checked against `iter_content` or `content_sha256` later.
Block i of a file is a 1 MiB random base block (seeded) rotated left by `(i * 7919) % 1 MiB`, so
no two nearby blocks repeat and a misplaced range shows up as wrong bytes.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

__all__ = [
    "BLOCK_SIZE",
    "action_items_document",
    "content_sha256",
    "crm_matches_document",
    "iso",
    "iter_content",
    "listed_meeting",
    "meeting_document",
    "summary_document",
    "transcript_document",
]

BLOCK_SIZE = 1 << 20
_STEP = 7919
BYTES_PER_SECOND = 72_000  # ~130 MB for 30 minutes, like Fathom's files


@lru_cache(maxsize=32)
def _base_block(seed: int) -> bytes:
    return random.Random(seed).randbytes(BLOCK_SIZE)


def iter_content(
    seed: int, size: int, start: int = 0, end: int | None = None, chunk: int = 65536
) -> Iterator[bytes]:
    """Bytes [start, end) of the file of `size` bytes made from `seed`, in pieces of <= chunk."""
    end = size if end is None else end
    if not 0 <= start <= end <= size or chunk <= 0:
        raise ValueError(f"bad range [{start}, {end}) for a file of {size} bytes")
    base = _base_block(seed)
    pos = start
    while pos < end:
        block, offset = divmod(pos, BLOCK_SIZE)
        at = (offset + block * _STEP) % BLOCK_SIZE
        n = min(chunk, end - pos, BLOCK_SIZE - offset, BLOCK_SIZE - at)
        yield base[at : at + n]
        pos += n


@lru_cache(maxsize=256)
def content_sha256(seed: int, size: int) -> str:
    """Hex SHA-256 of the whole file, cached because tests ask for it more than once."""
    digest = hashlib.sha256()
    for piece in iter_content(seed, size, chunk=BLOCK_SIZE):
        digest.update(piece)
    return digest.hexdigest()


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as Fathom writes date-times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _person(name: str, email: str, external: bool) -> dict[str, Any]:
    return {
        "name": name,
        "email": email,
        "email_domain": email.split("@", 1)[1],
        "is_external": external,
    }


def meeting_document(
    recording_id: int,
    *,
    size: int,
    title: str,
    created_at: datetime,
    owner: tuple[str, str],
    team: str | None,
) -> dict[str, Any]:
    """A Meeting with every field Fathom's schema requires; duration follows the file size."""
    name, email = owner
    end = created_at
    start = end - timedelta(seconds=max(1, size // BYTES_PER_SECOND))
    scheduled = start.replace(second=0, microsecond=0)
    guest = _person("Guest Person", f"guest{recording_id}@client.example", True)
    return {
        "title": title,
        "meeting_title": title,
        "meeting_type": "external",
        "recording_id": recording_id,
        "url": f"https://fathom.video/calls/{recording_id}",
        "share_url": f"https://fathom.video/share/rec{recording_id}",
        "created_at": iso(created_at),
        "scheduled_start_time": iso(scheduled),
        "scheduled_end_time": iso(scheduled + timedelta(minutes=30)),
        "recording_start_time": iso(start),
        "recording_end_time": iso(end),
        "calendar_invitees_domains_type": "one_or_more_external",
        "shared_with": "single_team" if team else "no_teams",
        "recorded_by": {
            "name": name,
            "email": email,
            "email_domain": email.split("@", 1)[1],
            "team": team,
        },
        "transcript_language": "en",
        "calendar_invitees": [_person(name, email, False), guest],
    }


def transcript_document(meeting: dict[str, Any]) -> list[dict[str, Any]]:
    """A short two-speaker transcript, the same on every call."""
    speakers = [meeting["recorded_by"]["name"], meeting["calendar_invitees"][1]["name"]]
    lines = ["Thanks for joining.", "Happy to be here.", "Let's review the plan.", "Sounds good."]
    return [
        {
            "speaker": {"display_name": speakers[i % 2]},
            "text": text,
            "timestamp": f"00:00:{i * 5:02d}",
        }
        for i, text in enumerate(lines)
    ]


def summary_document(meeting: dict[str, Any]) -> dict[str, Any]:
    return {
        "template_name": "General",
        "markdown_formatted": f"## {meeting['title']}\n\n- Reviewed the plan.\n",
    }


def action_items_document(meeting: dict[str, Any]) -> list[dict[str, Any]]:
    owner = meeting["recorded_by"]
    return [
        {
            "description": "Send the follow-up notes",
            "user_generated": False,
            "completed": False,
            "recording_timestamp": "00:00:15",
            "recording_playback_url": f"{meeting['url']}?timestamp=15",
            "assignee": {"name": owner["name"], "email": owner["email"], "team": owner["team"]},
        }
    ]


def crm_matches_document() -> dict[str, Any]:
    return {"contacts": [], "companies": [], "deals": [], "error": None}


def listed_meeting(doc: dict[str, Any], includes: set[str]) -> dict[str, Any]:
    """The meeting as a listing gives it, with what the `include_*` flags asked for."""
    item = dict(doc)
    if "include_transcript" in includes:
        item["transcript"] = transcript_document(doc)
    if "include_summary" in includes:
        item["default_summary"] = summary_document(doc)
    if "include_action_items" in includes:
        item["action_items"] = action_items_document(doc)
    if "include_crm_matches" in includes:
        item["crm_matches"] = crm_matches_document()
    return item

"""What a meeting id is: a Fathom `recording_id`, written as 1 to 18 ASCII digits, no leading zeros.

Python's `str.isdigit` and `int` take far more than that (`"²".isdigit()` is True and `int("²")`
raises; `int("١٠٠٤")` is 1004), and so does a loose JavaScript check: two spellings of one
recording would slip past the one-active-row index and move the same video twice. So every way
into the queue (the users' API through `pb_hooks/queue.pb.js`, the CLI, auto-move) and the worker
agree on this one definition, the same regular expression in both languages.
"""

from __future__ import annotations

import re

__all__ = ["MEETING_ID_RULE", "InvalidMeetingId", "canonical_meeting_id"]

_DIGITS = re.compile(r"[0-9]{1,18}", re.ASCII)
MEETING_ID_RULE = "a Fathom recording id (1 to 18 digits 0-9)"


class InvalidMeetingId(ValueError):
    """Not a recording id; the message quotes (a bounded part of) what was given."""

    def __init__(self, given: object) -> None:
        shown = repr(str(given)[:40])
        super().__init__(f"meeting id {shown} is not {MEETING_ID_RULE}")


def canonical_meeting_id(given: object) -> str:
    """The id as stored: ASCII digits without leading zeros (surrounding blanks dropped)."""
    text = str(given).strip(" \t\r\n") if isinstance(given, str | int) else ""
    if isinstance(given, bool) or not _DIGITS.fullmatch(text):
        raise InvalidMeetingId(given)
    return str(int(text))

"""What an API key may hold before it goes into a header.

A key travels in an HTTP header, where only visible ASCII belongs. A "key" with a line break, a
space inside or letters of another script (a mis-paste) can never work, and sending it fails deep
in h11 or the header encoder with the key quoted in the exception. So it is refused before any
request, as a key the user must save again: the same rule as `requireKeyText` in
pb_hooks/limits.js, which refuses such keys when they are saved.
"""

from __future__ import annotations

import re

from fathom2loom.errors import KeyUnusable

__all__ = ["MAX_KEY_LENGTH", "PROBLEM", "require_usable_key"]

MAX_KEY_LENGTH = 1024
_USABLE = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}")
PROBLEM = (
    "holds characters no API key has (spaces, line breaks, letters outside ASCII) or is over"
    f" {MAX_KEY_LENGTH} characters long"
)


def require_usable_key(provider: str, api_key: str) -> None:
    """Raise `KeyUnusable` (its message names no character of the key) unless it can be sent."""
    if not _USABLE.fullmatch(api_key):
        raise KeyUnusable(
            provider, f"The saved {provider} key {PROBLEM}: copy it again and save it"
        )

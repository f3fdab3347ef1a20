"""How long a provider asks us to wait, read as strictly as anything else it sends.

`Retry-After` is `delay-seconds` (ASCII digits) or an HTTP-date (RFC 9110 §10.2.3);
`RateLimit-Reset` is seconds. Python's `float` would also take `inf`, `1e308` and digits of
other scripts: one absurd header would then freeze a user's key for every worker for centuries
(the shared cool-down) or overflow where the wait is stored. A hint we cannot read is no hint;
one longer than `LONGEST_WAIT` is taken as that.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["LONGEST_WAIT", "retry_after_seconds"]

LONGEST_WAIT = 3600.0  # seconds; after it the call is simply tried again and may be told anew
_DELAY_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")  # `[0-9]`: ASCII digits only


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The server's wait hint: `Retry-After`, else `RateLimit-Reset`; None when neither reads."""
    for header, dates in (("Retry-After", True), ("RateLimit-Reset", False)):
        value = response.headers.get(header)
        seconds = None if value is None else _seconds(value.strip(), dates)
        if seconds is not None:
            return min(seconds, LONGEST_WAIT)
    return None


def _seconds(value: str, dates: bool) -> float | None:
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    if not dates or not value.isascii():
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": the RFC's dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())

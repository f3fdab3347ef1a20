"""Masking secrets in anything that may be written down: log messages and their metadata.

Two layers. Exact: a task registers the secrets it holds (`secret_scope`: the user's decrypted
keys), and every occurrence is masked wherever it appears. By shape: API keys and tokens in
headers or `name=value` pairs, signed URLs (their query and token-like path segments), JWTs, and
long random-looking strings. The second layer catches what nobody registered.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = [
    "MASK",
    "RedactingFilter",
    "redact",
    "redact_value",
    "secret_scope",
    "secrets_in_scope",
]

MASK = "[redacted]"
_secrets: ContextVar[tuple[str, ...]] = ContextVar("fathom2loom_secrets", default=())

_SECRET_NAME = (
    r"(?:api[_-]?key|x-api-key|access[_-]?token|refresh[_-]?token|token|secret|password"
    r"|passwd|pwd|signature|sig|credential|auth)"
)
# Celery task ids and other UUIDs are identifiers people search logs for, not secrets: they are
# set aside before the shape patterns run and put back after.
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
_PATTERNS = [
    # Authorization: Bearer xxx / Basic xxx
    (
        re.compile(r"(?i)(authorization\s*[:=]\s*(?:bearer|basic|token)?\s*)[^\s,;\"']+"),
        r"\1" + MASK,
    ),
    # "password": "xxx" (JSON) and password=xxx / api_key: xxx
    (re.compile(rf"(?i)(\"{_SECRET_NAME}\"\s*:\s*\")[^\"]*(\")"), r"\1" + MASK + r"\2"),
    (re.compile(rf"(?i)(\b{_SECRET_NAME}\b\s*[:=]\s*)[^\s&,;\"']+"), r"\1" + MASK),
    # URLs: keep scheme, host and plain path; mask the query and token-like path segments
    (re.compile(r"(?i)(\bhttps?://[^\s/?#\"']+[^\s?#\"']*)\?[^\s\"'#]*"), r"\1?" + MASK),
    (re.compile(r"(?<=/)[A-Za-z0-9_\-.~%]{24,}(?=[/?#\s\"']|$)"), MASK),
    # JWTs and webhook secrets
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), MASK),
    # Long random-looking tokens: 24+ characters mixing letters and digits
    (re.compile(r"\b(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{24,}\b"), MASK),
]
_SECRET_KEY = re.compile(rf"(?i)^{_SECRET_NAME}$|key$|secret|password|token|authorization")
_SAFE_KEYS = frozenset({"task_id", "row_id", "meeting_id", "user_id", "logger", "exc_type"})


@contextmanager
def secret_scope(*values: str) -> Iterator[None]:
    """Within this block (and the threads it starts), these values are masked everywhere."""
    marker = _secrets.set(_secrets.get() + tuple(v for v in values if v and len(v) >= 4))
    try:
        yield
    finally:
        _secrets.reset(marker)


def secrets_in_scope() -> tuple[str, ...]:
    """The secrets registered where this runs (to redact later, elsewhere, with `scope=`)."""
    return _secrets.get()


# A quick test that text may hold something a shape pattern below masks: any of these words in
# its lowercased form, or 24 non-space characters in a row. Most log lines hold neither, and the
# test costs about a tenth of running the patterns (or of one case-insensitive search for them).
_MAY_MATCH_WORD = re.compile(r"://|eyj|whsec_|api|token|secret|passw|pwd|sig|credential|auth")
_MAY_MATCH_LONG = re.compile(r"\S{24}")


def redact(text: str, scope: tuple[str, ...] | None = None) -> str:
    """Mask secrets: those in `scope` (default: registered where this runs), then by shape."""
    if scope is None:
        scope = _secrets.get()
    if scope:
        for secret in sorted(scope, key=len, reverse=True):
            text = text.replace(secret, MASK)
    if not (_MAY_MATCH_WORD.search(text.lower()) or _MAY_MATCH_LONG.search(text)):
        return text
    kept = _UUID.findall(text) if "\x00" not in text else []
    if kept:
        text = _UUID.sub("\x00", text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for uuid in kept:
        text = text.replace("\x00", uuid, 1)
    return text


@functools.lru_cache(maxsize=1024)
def _masked_whole(key: str) -> bool:
    """Whether values under this key are secrets whatever they look like (keys repeat a lot)."""
    return key not in _SAFE_KEYS and _SECRET_KEY.search(key) is not None


def redact_value(value: Any, key: str = "", scope: tuple[str, ...] | None = None) -> Any:
    """Redact a JSON-able value; values under secret-sounding keys are masked whole."""
    if key and _masked_whole(key):
        return MASK
    if isinstance(value, str):
        return value if key in _SAFE_KEYS else redact(value, scope)
    if isinstance(value, dict):
        return {str(k): redact_value(v, str(k), scope) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, scope=scope) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler writes it out.

    Put on the console handlers of every process (worker, beat), so stdout and container logs are
    as clean as the `logs` collection.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self._formatter.formatException(record.exc_info))
        return True

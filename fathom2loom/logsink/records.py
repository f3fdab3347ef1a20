"""A `logging.LogRecord` as a row of the `logs` collection, redacted, with its own id.

In two steps, so the code that logs pays for the first only: `capture` (at the log call: the
message formatted, and what the calling context knows: the secrets in scope, the row, the task)
and `to_row` (later, in the sink's pusher thread: redaction, metadata, the date).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from typing import Any, NamedTuple

from fathom2loom.logsink.context import current
from fathom2loom.pocketbase.dates import now_iso
from fathom2loom.redact import redact, redact_value, secrets_in_scope

__all__ = ["Captured", "capture", "component_of", "level_of", "new_id", "notice", "to_row"]

_LEVELS: tuple[tuple[int, str], ...] = (
    (logging.CRITICAL, "fatal"),
    (logging.ERROR, "error"),
    (logging.WARNING, "warn"),
    (logging.INFO, "info"),
    (logging.DEBUG, "debug"),
)
# Attributes every LogRecord has, and those that become columns of their own: anything else came
# in through `extra=` and goes to metadata.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_TOP_LEVEL = {"user_id", "component"}
_NOT_METADATA = frozenset(_STANDARD | _TOP_LEVEL)


class Captured(NamedTuple):
    """What must be taken at the log call; the rest can wait."""

    id: str  # fixed at the call: a record pushed again keeps its id (stored once)
    record: logging.LogRecord
    message: str
    secrets: tuple[str, ...]
    context: tuple[tuple[str, str], ...]
    traceback: str | None


def capture(record: logging.LogRecord) -> Captured:
    """The cheap part, at the call: later the arguments may have changed, the context is gone."""
    trace = None
    if record.exc_info and record.exc_info[0] is not None:
        trace = "".join(traceback.format_exception(*record.exc_info))[-8000:]
    return Captured(new_id(), record, record.getMessage(), secrets_in_scope(), current(), trace)


def new_id() -> str:
    """A random 15-character id (lowercase hex), a shape PocketBase accepts for record ids."""
    return os.urandom(8).hex()[:15]


def level_of(levelno: int) -> str:
    for threshold, name in _LEVELS:
        if levelno >= threshold:
            return name
    return "trace"


def component_of(record: logging.LogRecord) -> str:
    explicit = getattr(record, "component", None)
    if explicit:
        return str(explicit)
    parts = record.name.split(".")
    if parts[0] in ("tasks", "fathom2loom") and len(parts) > 1:
        return parts[1]  # tasks.transfer → transfer, fathom2loom.dispatcher → dispatcher
    return parts[0]  # Libraries by their package: celery, kombu, httpx...


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _pb_date(created: float) -> str:
    """PocketBase's date text, the seconds part formatted once per second."""
    whole = int(created)
    if _second[0] != whole:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((created - whole) * 1000):03d}Z"


def to_row(captured: Captured | logging.LogRecord) -> dict[str, Any]:
    """The `logs` row; `ts` is when the event happened, not when it is stored."""
    if isinstance(captured, logging.LogRecord):
        captured = capture(captured)
    record, scope = captured.record, captured.secrets
    metadata: dict[str, Any] = {"logger": record.name}
    user_id = None
    for key, value in captured.context:
        if key == "user_id":
            user_id = value
        elif key != "component":
            metadata[key] = value
    attributes = vars(record)
    for key in attributes.keys() - _NOT_METADATA:
        if not key.startswith("_"):
            value = attributes[key]
            metadata[key] = value if isinstance(value, str | int | float | bool) else repr(value)
    if captured.traceback is not None:
        assert record.exc_info is not None and record.exc_info[0] is not None
        metadata["exc_type"] = record.exc_info[0].__name__
        metadata["traceback"] = captured.traceback
    user_id = attributes.get("user_id") or user_id
    return {
        "id": captured.id,
        "level": level_of(record.levelno),
        "msg": redact(captured.message, scope)[:20000],
        "ts": _pb_date(record.created),
        "user_id": str(user_id) if user_id else "",
        "component": component_of(record)[:100],
        "metadata": redact_value(metadata, scope=scope),
    }


def notice(
    level: str, msg: str, metadata: dict[str, Any], *, record_id: str | None = None
) -> dict[str, Any]:
    """A `logs` row the sink writes about itself (records dropped, refused)."""
    return {
        "id": record_id or new_id(),
        "level": level,
        "msg": msg,
        "ts": now_iso(),
        "user_id": "",
        "component": "logging_sink",
        "metadata": metadata,
    }

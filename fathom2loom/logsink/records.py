"""A `logging.LogRecord` as a row of the `logs` collection, redacted, with its own id."""

from __future__ import annotations

import logging
import os
import traceback
from datetime import UTC, datetime
from typing import Any

from celery._state import get_current_task

from fathom2loom.logsink.context import current
from fathom2loom.redact import redact, redact_value

__all__ = ["component_of", "level_of", "new_id", "to_row"]

_LEVELS: tuple[tuple[int, str], ...] = (
    (logging.CRITICAL, "fatal"),
    (logging.ERROR, "error"),
    (logging.WARNING, "warn"),
    (logging.INFO, "info"),
    (logging.DEBUG, "debug"),
)
# Attributes every LogRecord has; anything else came in through `extra=` and goes to metadata.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_TOP_LEVEL = {"user_id", "component"}


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


def _task_context() -> dict[str, str]:
    """The Celery task being run in this thread, if any."""
    task = get_current_task()
    request_id = getattr(getattr(task, "request", None), "id", None)
    if task is None or not request_id:
        return {}
    return {"task_id": str(request_id), "task": str(task.name)}


def to_row(record: logging.LogRecord) -> dict[str, Any]:
    """The `logs` row for a record; `ts` is when the event happened, not when it is stored."""
    context = current()
    metadata: dict[str, Any] = {"logger": record.name, **_task_context()}
    metadata.update({k: v for k, v in context.items() if k not in _TOP_LEVEL})
    for key, value in vars(record).items():
        if key not in _STANDARD and key not in _TOP_LEVEL and not key.startswith("_"):
            metadata[key] = value if isinstance(value, str | int | float | bool) else repr(value)
    if record.exc_info and record.exc_info[0] is not None:
        metadata["exc_type"] = record.exc_info[0].__name__
        metadata["traceback"] = "".join(traceback.format_exception(*record.exc_info))[-8000:]
    created = datetime.fromtimestamp(record.created, UTC)
    user_id = getattr(record, "user_id", None) or context.get("user_id")
    return {
        "id": new_id(),
        "level": level_of(record.levelno),
        "msg": redact(record.getMessage())[:20000],
        "ts": created.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z",
        "user_id": str(user_id) if user_id else "",
        "component": component_of(record)[:100],
        "metadata": redact_value(metadata),
    }

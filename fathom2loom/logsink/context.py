"""What a log record is about (a queue row, its user, its meeting), for every line logged meanwhile.

The transfer task binds the row when it starts and the user once it has read the row; every record
logged in that context, by our code or by a library, carries them into `logs` (`user_id` as the
relation, the rest in `metadata`), crash reports included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

__all__ = ["bind", "current", "enter", "leave", "log_context"]

_fields: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("fathom2loom_log_context", default=())


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Within this block, records carry `fields` (empty values are left out)."""
    token = _fields.set(_merge(fields))
    try:
        yield
    finally:
        _fields.reset(token)


def enter(**fields: object) -> Token[tuple[tuple[str, str], ...]]:
    """`log_context` for callers that cannot use `with` (signal handlers); `leave` undoes it."""
    return _fields.set(_merge(fields))


def leave(token: Token[tuple[tuple[str, str], ...]]) -> None:
    _fields.reset(token)


def bind(**fields: object) -> None:
    """Add `fields` to the current block (undone when the enclosing `log_context` ends)."""
    _fields.set(_merge(fields))


def current() -> tuple[tuple[str, str], ...]:
    """The fields bound here, as (name, value) pairs: cheap to take at every log call."""
    return _fields.get()


def _merge(fields: dict[str, object]) -> tuple[tuple[str, str], ...]:
    merged = dict(_fields.get())
    merged.update({name: str(value) for name, value in fields.items() if value not in (None, "")})
    return tuple(merged.items())

"""The shapes of PocketBase's successful answers, checked where they are read.

A 2xx body that is not JSON, or JSON of another shape (a proxy's page, a half-written answer), is
a `PocketBaseGarbled`: transient, inside the error tree, never a `KeyError` or `TypeError` deep in
a caller. `call` names the request ("GET /api/...") for the message.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fathom2loom.errors import PocketBaseGarbled

__all__ = ["field", "items", "record"]

Record = dict[str, Any]
T = TypeVar("T")


def field(body: Any, key: str, kind: type[T], call: str) -> T:
    """`body[key]`, which must be a `kind`."""
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, kind):
        raise PocketBaseGarbled(call, f"an object with {kind.__name__} {key!r}")
    return value


def record(body: Any, call: str) -> Record:
    """A record: an object with a text `id`."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise PocketBaseGarbled(call, "a record")
    return body


def items(body: Any, call: str) -> list[Record]:
    """A list answer's `items`: objects (records, or the fields of them that were asked for)."""
    found = field(body, "items", list, call)
    if not all(isinstance(item, dict) for item in found):
        raise PocketBaseGarbled(call, "a list of records")
    return found

"""The project's PocketBase schema, read from the migration files' JSON snapshots.

Each migration in `pb_migrations/` that changes collections carries the changed collections as a
strict-JSON snapshot between `/* BEGIN SNAPSHOT */` and `/* END SNAPSHOT */`. PocketBase applies it
when it starts with that directory; bootstrap applies the same snapshot through the REST import API
when it meets a PocketBase started without it. One source, two paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fathom2loom.errors import SchemaError

__all__ = ["REQUIRED_COLLECTIONS", "SchemaError", "desired_collections", "outdated_collections"]

REQUIRED_COLLECTIONS = ("user_meta", "api_keys", "queue", "logs", "auto_move")
_BEGIN, _END = "/* BEGIN SNAPSHOT */", "/* END SNAPSHOT */"
_RULES = ("listRule", "viewRule", "createRule", "updateRule", "deleteRule")


def _snapshot(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if _BEGIN not in text:
        return []
    body = text.split(_BEGIN, 1)[1].split(_END, 1)[0]
    try:
        collections = json.loads(body)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path.name}: the snapshot is not strict JSON ({exc})") from exc
    if not isinstance(collections, list):
        raise SchemaError(f"{path.name}: the snapshot must be a JSON list of collections")
    return collections


def desired_collections(migrations_dir: Path) -> list[dict[str, Any]]:
    """The collections as the migrations leave them, later files replacing earlier ones by name."""
    if not migrations_dir.is_dir():
        raise SchemaError(f"migrations directory {migrations_dir} does not exist")
    by_name: dict[str, dict[str, Any]] = {}
    for path in sorted(migrations_dir.glob("*.js")):
        for collection in _snapshot(path):
            by_name[collection["name"]] = collection
    return list(by_name.values())


def _differs(existing: dict[str, Any], desired: dict[str, Any]) -> bool:
    have = {f["name"]: f for f in existing.get("fields", [])}
    for want in desired.get("fields", []):
        got = have.get(want["name"])
        if got is None or any(got.get(k) != v for k, v in want.items() if k != "id"):
            return True
    if any(existing.get(rule) != desired.get(rule) for rule in _RULES if rule in desired):
        return True
    return sorted(existing.get("indexes", [])) != sorted(desired.get("indexes", []))


def outdated_collections(
    existing: list[dict[str, Any]], desired: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The desired collections that are missing on the server or differ from it."""
    by_name = {c["name"]: c for c in existing}
    return [
        want
        for want in desired
        if want["name"] not in by_name or _differs(by_name[want["name"]], want)
    ]

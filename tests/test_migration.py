"""The initial schema migration on a real PocketBase 0.40: up creates, down removes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.schema import REQUIRED_COLLECTIONS
from fathom2loom.settings import DEFAULT_MIGRATIONS_DIR as MIGRATIONS
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, start_pocketbase

USERS = "_pb_users_auth_"
EXPECTED_FIELDS: dict[str, dict[str, tuple[str, Any]]] = {
    "user_meta": {
        "user_id": ("relation", USERS),
        "file_path": ("text", None),
        "active": ("bool", None),
        "verified": ("bool", None),
        "premium": ("bool", None),
        "auto_move": ("bool", None),
        "auto_move_since": ("date", None),
        "fathom_email": ("email", None),
    },
    "auto_move": {
        "user_id": ("relation", USERS),
        "webhook_id": ("text", None),
        "encrypted_secret": ("text", None),
        "destination_url": ("text", None),
        "registered_for": ("text", None),
        "status": ("text", None),
        "watermark": ("date", None),
        "polled_at": ("date", None),
        "counts_from": ("date", None),
        "recorded_by": ("text", None),
    },
    "api_keys": {
        "user_id": ("relation", USERS),
        "encrypted_fathom": ("text", None),
        "encrypted_loom": ("text", None),
        "fathom_hint": ("text", None),
        "loom_hint": ("text", None),
        "fathom_check": ("text", None),
        "loom_check": ("text", None),
        "checked_for": ("text", None),
    },
    "queue": {
        "user_id": ("relation", USERS),
        "meeting_id": ("text", None),
        "status": ("select", ["pending", "processing", "completed", "failed", "cancelled"]),
        "position": ("number", None),
        "queued_at": ("date", None),
        "started_at": ("date", None),
        "completed_at": ("date", None),
        "error_message": ("text", None),
        "loom_video_id": ("text", None),
        "loom_url": ("url", None),
        "fathom_download_id": ("text", None),
        "attempts": ("number", None),
        "bytes_done": ("number", None),
        "bytes_total": ("number", None),
        "heartbeat_at": ("date", None),
        "next_attempt_at": ("date", None),
        "wait_reason": ("text", None),
        "transfer_state": ("json", None),
        "recorded_at": ("date", None),
    },
    "logs": {
        "level": ("select", ["trace", "debug", "info", "warn", "error", "fatal"]),
        "msg": ("text", None),
        "ts": ("date", None),
        "user_id": ("relation", USERS),
        "component": ("text", None),
        "metadata": ("json", None),
    },
}
SYSTEM_FIELDS = {"id", "created", "updated"}
TRANSFER_FIELDS = {
    "loom_video_id",
    "loom_url",
    "fathom_download_id",
    "attempts",
    "bytes_done",
    "bytes_total",
    "heartbeat_at",
}
WAIT_FIELDS = {"next_attempt_at", "wait_reason", "transfer_state"}


def collections_by_name(pb: PocketBase) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pb.collections()}


def assert_schema(collections: dict[str, dict[str, Any]]) -> None:
    for name, expected in EXPECTED_FIELDS.items():
        fields = {f["name"]: f for f in collections[name]["fields"]}
        assert set(fields) - SYSTEM_FIELDS == set(expected), name
        for field_name, (kind, detail) in expected.items():
            field = fields[field_name]
            assert field["type"] == kind, (name, field_name)
            if kind == "relation":
                assert field["collectionId"] == detail
                assert field["maxSelect"] == 1
            if kind == "select":
                assert field["values"] == detail
                assert field["maxSelect"] == 1
    assert collections["logs"]["updateRule"] is None
    assert collections["logs"]["deleteRule"] is None
    auto_move = collections["auto_move"]
    assert [auto_move[f"{op}Rule"] for op in ("create", "update", "delete")] == [None] * 3
    hidden = {f["name"] for f in auto_move["fields"] if f.get("hidden")}
    assert hidden == {"encrypted_secret", "registered_for"}
    assert any("user_id" in index for index in collections["queue"]["indexes"])


@pytest.fixture
def fresh(tmp_path: Path) -> Any:
    server = start_pocketbase(tmp_path)
    yield server
    server.stop()


def test_migrate_up_creates_the_collections(fresh: Any) -> None:
    # Given a PocketBase started with the project's migrations
    with PocketBase(fresh.url, ADMIN_EMAIL, ADMIN_PASSWORD) as pb:
        # Expect exactly the designed fields, types and select values
        assert_schema(collections_by_name(pb))
        indexes = {c["name"]: " ".join(c["indexes"]) for c in pb.collections()}
    assert "`status`, `position`" in indexes["queue"]
    assert "`meeting_id`" in indexes["queue"]
    for column in ("`ts`", "`level`", "`user_id`"):
        assert column in indexes["logs"]


def restart(server: Any, migrations: Path | None) -> dict[str, dict[str, Any]]:
    """Restart the server with or without the migrations dir; return its collections."""
    server.stop()
    server.migrations_dir = migrations
    server.start()
    with PocketBase(server.url, ADMIN_EMAIL, ADMIN_PASSWORD) as pb:
        return collections_by_name(pb)


def test_migrate_down_removes_them_and_up_restores_them(fresh: Any) -> None:
    # Given a migrated server
    migrations = fresh.migrations_dir
    fresh.stop()
    # When the canonical-ids migration is reverted, the schema stays (it changed data only)
    fresh.migrate("down", "1")
    assert_schema(restart(fresh, None))
    # When the own-meetings migration is reverted, auto_move and user_meta lose just its fields
    fresh.stop()
    fresh.migrations_dir = migrations
    fresh.migrate("down", "1")
    reverted = restart(fresh, None)
    auto_move_fields = {f["name"] for f in reverted["auto_move"]["fields"]}
    assert {"counts_from", "recorded_by"}.isdisjoint(auto_move_fields)
    assert "watermark" in auto_move_fields
    user_meta_fields = {f["name"] for f in reverted["user_meta"]["fields"]}
    assert "fathom_email" not in user_meta_fields and "auto_move" in user_meta_fields
    # When the auto-move migration is reverted, its collection and fields go
    fresh.stop()
    fresh.migrations_dir = migrations
    fresh.migrate("down", "1")
    reverted = restart(fresh, None)
    assert "auto_move" not in reverted
    assert "auto_move" not in {f["name"] for f in reverted["user_meta"]["fields"]}
    # When the users'-path migration is reverted, its fields go
    fresh.stop()
    fresh.migrations_dir = migrations
    fresh.migrate("down", "1")
    reverted = restart(fresh, None)
    assert "recorded_at" not in {f["name"] for f in reverted["queue"]["fields"]}
    assert "fathom_check" not in {f["name"] for f in reverted["api_keys"]["fields"]}
    # When the waits migration is reverted, the queue loses its fields and its unique index
    fresh.stop()
    fresh.migrations_dir = migrations
    fresh.migrate("down", "1")
    queue = restart(fresh, None)["queue"]
    names = {f["name"] for f in queue["fields"]}
    assert names.isdisjoint(WAIT_FIELDS) and names >= TRANSFER_FIELDS
    assert not any("idx_queue_active_meeting" in index for index in queue["indexes"])
    assert "wait_reason" not in queue["updateRule"]
    # When the transfer-fields migration is reverted, the queue loses just those fields
    fresh.stop()
    fresh.migrations_dir = migrations
    fresh.migrate("down", "1")
    queue = restart(fresh, None)["queue"]
    assert {f["name"] for f in queue["fields"]}.isdisjoint(TRANSFER_FIELDS)
    assert "loom_video_id" not in queue["updateRule"]
    # When the initial migration is reverted too, no app collection is left
    fresh.stop()
    fresh.migrations_dir = migrations
    fresh.migrate("down", "1")
    names = set(restart(fresh, None))
    assert names.isdisjoint(REQUIRED_COLLECTIONS)
    assert "users" in names
    # And migrate up brings everything back
    fresh.stop()
    fresh.migrations_dir = migrations
    fresh.migrate("up")
    assert_schema(restart(fresh, migrations))


def server_before(migration: str, tmp_path: Path, **options: Any) -> Any:
    """A server migrated up to just before `migration` (a file name's start), from a directory
    of its own that `migrate_to_the_end` fills with the rest."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for path in sorted(MIGRATIONS.glob("*.js")):
        if path.name < migration:
            (migrations / path.name).write_text(path.read_text())
    return start_pocketbase(tmp_path / "server", migrations_dir=migrations, **options)


def migrate_to_the_end(server: Any) -> None:
    server.stop()
    for path in sorted(MIGRATIONS.glob("*.js")):
        (server.migrations_dir / path.name).write_text(path.read_text())
    server.migrate("up")
    server.start()


def test_the_waits_migration_cancels_active_duplicates_before_adding_its_index(
    tmp_path: Path,
) -> None:
    # Given a server at the transfer-fields migration, holding two active rows for one meeting
    server = server_before("1730000002", tmp_path)
    try:
        with PocketBase(server.url, ADMIN_EMAIL, ADMIN_PASSWORD) as pb:
            user = pb.create(
                "users", {"email": "d@u.test", "password": "p" * 12, "passwordConfirm": "p" * 12}
            )
            rows = [
                pb.create(
                    "queue",
                    {
                        "user_id": user["id"],
                        "meeting_id": "77",
                        "status": status,
                        "queued_at": f"2026-11-25 10:0{n}:00.000Z",
                    },
                )["id"]
                for n, status in enumerate(["pending", "processing", "pending", "completed"])
            ]
        # When the waits migration is applied
        migrate_to_the_end(server)
        with PocketBase(server.url, ADMIN_EMAIL, ADMIN_PASSWORD) as pb:
            statuses = [pb.get("queue", r)["status"] for r in rows]
            cancelled = pb.get("queue", rows[0])["error_message"]
    finally:
        server.stop()
    # Expect the processing row kept, the pending duplicates cancelled with a reason, the rest
    # untouched
    assert statuses == ["cancelled", "processing", "cancelled", "completed"]
    assert cancelled == "Cancelled: another transfer of this meeting was already queued"


def test_the_canonical_ids_migration_leaves_one_spelling_per_recording(tmp_path: Path) -> None:
    # Given a server before it, without the hooks (which now refuse such ids at the door),
    # holding rows written before meeting ids were checked
    server = server_before("1730000006", tmp_path, hooks=False)
    given = [
        ("1004", "pending"),
        ("01004", "pending"),
        ("001004", "processing"),
        ("0007", "completed"),
        ("١٠٠٤", "pending"),  # Arabic-Indic digits
        ("²", "processing"),
        ("000", "pending"),
        ("abc", "completed"),
    ]
    try:
        with PocketBase(server.url, ADMIN_EMAIL, ADMIN_PASSWORD) as pb:
            user = pb.create(
                "users", {"email": "c@u.test", "password": "p" * 12, "passwordConfirm": "p" * 12}
            )
            rows = [
                pb.create("queue", {"user_id": user["id"], "meeting_id": m, "status": s})["id"]
                for m, s in given
            ]
        # When the migration is applied
        migrate_to_the_end(server)
        with PocketBase(server.url, ADMIN_EMAIL, ADMIN_PASSWORD) as pb:
            after = [pb.get("queue", r) for r in rows]
    finally:
        server.stop()
    # Expect every digit id spelled canonically, the other active spellings of 1004 cancelled,
    # the active rows that hold no recording id failed with what to do, the ended rows kept
    assert [(r["meeting_id"], r["status"]) for r in after] == [
        ("1004", "pending"),
        ("1004", "cancelled"),
        ("1004", "cancelled"),
        ("7", "completed"),
        ("١٠٠٤", "failed"),
        ("²", "failed"),
        ("0", "pending"),
        ("abc", "completed"),
    ]
    assert "two spellings" in after[1]["error_message"]
    assert after[4]["error_message"] == (
        "This row's meeting id '١٠٠٤' is not a Fathom recording id (1 to 18 digits 0-9): queue"
        " the meeting again by its id"
    )
    assert after[7]["error_message"] == ""

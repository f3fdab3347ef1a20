"""Access rules, checked with two real users against a real PocketBase."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fathom2loom.pocketbase.client import PocketBase
from tests.conftest import UserSession

NOW = "2026-11-25 10:00:00.000Z"
OWNED = {
    "user_meta": lambda uid: {"user_id": uid, "active": True},
    "api_keys": lambda uid: {"user_id": uid, "encrypted_fathom": "v1.x", "encrypted_loom": "v1.y"},
    "queue": lambda uid: {"user_id": uid, "meeting_id": "123", "status": "pending"},
    "logs": lambda uid: {"user_id": uid, "level": "info", "msg": "hello", "ts": NOW},
}
Users = tuple[UserSession, UserSession]


@pytest.fixture
def users(make_user: Callable[[str], UserSession]) -> Users:
    return make_user("alice"), make_user("bob")


def seed(pb: PocketBase, collection: str, owner: UserSession, **extra: Any) -> str:
    record = pb.create(collection, {**OWNED[collection](owner.id), **extra})
    return str(record["id"])


@pytest.mark.parametrize("collection", list(OWNED))
def test_a_user_cannot_read_or_change_another_users_rows(
    pb: PocketBase, users: Users, collection: str
) -> None:
    alice, bob = users
    # Given one row for each user
    bobs = seed(pb, collection, bob)
    alices = seed(pb, collection, alice)
    # Expect alice to see only her own row
    assert alice.list_ids(collection) == {alices}
    assert alice.call("GET", alice.records(collection, bobs)).status_code == 404
    # And to be unable to change or delete bob's
    patch = alice.call("PATCH", alice.records(collection, bobs), json={"status": "cancelled"})
    assert patch.status_code in (403, 404)
    assert alice.call("DELETE", alice.records(collection, bobs)).status_code in (403, 404)
    assert pb.get(collection, bobs)["user_id"] == bob.id


@pytest.mark.parametrize("collection", list(OWNED))
def test_a_user_cannot_create_rows_owned_by_someone_else(
    pb: PocketBase, users: Users, collection: str
) -> None:
    alice, bob = users
    response = alice.call("POST", alice.records(collection), json=OWNED[collection](bob.id))
    assert response.status_code in (400, 403)
    assert list(pb.list_all(collection)) == []


@pytest.mark.parametrize("collection", ["user_meta", "api_keys", "queue"])
def test_a_user_manages_their_own_rows(pb: PocketBase, users: Users, collection: str) -> None:
    alice, bob = users
    if collection == "queue":
        alice.save_keys()  # (no row is queued without keys to move it)
    created = alice.call("POST", alice.records(collection), json=OWNED[collection](alice.id))
    assert created.status_code == 200, created.text
    row = created.json()["id"]
    # Nobody can move a row to another owner
    moved = alice.call("PATCH", alice.records(collection, row), json={"user_id": bob.id})
    assert moved.status_code in (400, 403, 404)
    assert alice.call("DELETE", alice.records(collection, row)).status_code == 204


def test_superuser_sees_everything(pb: PocketBase, users: Users) -> None:
    for collection in OWNED:
        ids = {seed(pb, collection, user) for user in users}
        assert {r["id"] for r in pb.list_all(collection)} == ids


def test_queue_rows_are_created_pending_only(pb: PocketBase, users: Users) -> None:
    alice, _ = users
    for bad in (
        {"status": "processing"},
        {"status": "completed"},
        {"status": "pending", "position": 1},
        {"status": "pending", "started_at": NOW},
        {"status": "pending", "error_message": "x"},
    ):
        body = {**OWNED["queue"](alice.id), **bad}
        assert alice.call("POST", alice.records("queue"), json=body).status_code == 400, bad
    assert list(pb.list_all("queue")) == []


def test_queue_status_moves_a_user_may_make(pb: PocketBase, users: Users) -> None:
    alice, bob = users

    def set_status(row: str, status: str, who: UserSession = alice, **extra: Any) -> Any:
        return who.call("PATCH", who.records("queue", row), json={"status": status, **extra})

    alice.save_keys()
    pending = seed(pb, "queue", alice)
    # A user cannot complete, fail or start their row, and is told why
    for status in ("completed", "failed", "processing"):
        refused = set_status(pending, status)
        assert refused.status_code == 400, status
        assert refused.json()["message"] == (
            f"A transfer's status can only be set to cancelled or pending, not {status}"
        )
    # Nor change anything but the status (PocketBase's rule: a bare 404)
    assert set_status(pending, "cancelled", meeting_id="999").status_code == 404
    assert set_status(pending, "cancelled", position=1).status_code == 404
    assert set_status(pending, "cancelled", loom_url="https://evil.example/x").status_code == 404
    assert set_status(pending, "cancelled", attempts=0, bytes_done=5).status_code == 404
    assert set_status(pending, "cancelled", wait_reason="x").status_code == 404
    # Another user's row stays invisible: a 404, with nothing said about it
    assert set_status(pending, "cancelled", who=bob).status_code == 404
    # But can cancel a pending or a processing row, which leaves the line at once
    pb.update("queue", pending, {"position": 7})
    cancelled = set_status(pending, "cancelled")
    assert cancelled.status_code == 200 and cancelled.json()["position"] == 0
    assert pb.get("queue", pending)["status"] == "cancelled"
    assert pb.get("queue", pending)["position"] == 0
    processing = seed(pb, "queue", alice, status="processing")
    assert set_status(processing, "cancelled").status_code == 200
    # A cancelled row stays cancelled; a failed row can be retried; each refusal says why
    again = set_status(pending, "pending")
    assert again.status_code == 400
    assert again.json()["message"] == "This transfer is cancelled: only a failed one can be retried"
    failed = seed(pb, "queue", alice, status="failed", error_message="boom")
    assert set_status(failed, "pending").status_code == 200
    completed = seed(pb, "queue", alice, status="completed")
    assert set_status(completed, "pending").status_code == 400
    cancel = set_status(completed, "cancelled")
    assert cancel.status_code == 400
    assert cancel.json()["message"] == (
        "This transfer is completed: only a pending or processing one can be cancelled"
    )


def test_a_meeting_is_queued_once_at_a_time(pb: PocketBase, users: Users) -> None:
    alice, _ = users
    alice.save_keys()
    body = {"user_id": alice.id, "meeting_id": "4242", "status": "pending"}
    first = alice.call("POST", alice.records("queue"), json=body)
    assert first.status_code == 200
    second = alice.call("POST", alice.records("queue"), json=body)
    assert second.status_code == 400
    assert second.json()["message"] == (
        f"Meeting 4242 is already queued (row {first.json()['id']}): wait for it or cancel it"
    )
    # Once that one ended, the meeting may be queued again
    pb.update("queue", first.json()["id"], {"status": "failed"})
    assert alice.call("POST", alice.records("queue"), json=body).status_code == 200
    # And the failed row cannot be retried while the new one is active
    retry = alice.call(
        "PATCH", alice.records("queue", first.json()["id"]), json={"status": "pending"}
    )
    assert retry.status_code == 400 and "queued again already" in retry.json()["message"]


def test_logs_are_read_only_for_users(pb: PocketBase, users: Users) -> None:
    alice, _ = users
    own = seed(pb, "logs", alice)
    untied = pb.create("logs", {"level": "warn", "msg": "system", "ts": NOW})["id"]
    # A user sees only the logs tied to them, and cannot edit or delete even those
    assert alice.list_ids("logs") == {own}
    assert alice.call("GET", alice.records("logs", untied)).status_code == 404
    assert alice.call("PATCH", alice.records("logs", own), json={"msg": "x"}).status_code == 403
    assert alice.call("DELETE", alice.records("logs", own)).status_code == 403
    # They may write logs about themselves, marked as theirs: never one that reads as the service's
    body = {
        "level": "info",
        "msg": "from the app",
        "ts": NOW,
        "user_id": alice.id,
        "component": "transfer",
        "metadata": {"source": "service"},
    }
    written = alice.call("POST", alice.records("logs"), json=body)
    assert written.status_code == 200
    stored = pb.get("logs", written.json()["id"])
    assert stored["component"] == "user:transfer" and stored["metadata"]["source"] == "user"
    untied_body = {**body, "user_id": ""}
    assert alice.call("POST", alice.records("logs"), json=untied_body).status_code == 400


def test_users_cannot_grant_themselves_premium(pb: PocketBase, users: Users) -> None:
    alice, _ = users
    body = {**OWNED["user_meta"](alice.id), "premium": True}
    assert alice.call("POST", alice.records("user_meta"), json=body).status_code == 400
    row = seed(pb, "user_meta", alice)
    for flag in ({"premium": True}, {"verified": True}, {"file_path": "/etc/passwd"}):
        assert alice.call("PATCH", alice.records("user_meta", row), json=flag).status_code == 404
    ok = alice.call("PATCH", alice.records("user_meta", row), json={"active": False})
    assert ok.status_code == 200

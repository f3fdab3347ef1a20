"""`QueueStore`, the one owner of queue rows, against a real PocketBase: what it hands out, and
the rules it keeps (one active row per meeting, cancel only active rows, retry only failed ones,
to the back of the line)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from fathom2loom.errors import PocketBaseValidation, QueueRefused
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.queue_rows import QueueRow, Status
from fathom2loom.queue_store import QueueStore
from tests.conftest import UserSession


@pytest.fixture
def queue(pb: PocketBase) -> QueueStore:
    return QueueStore(pb)


def test_a_row_is_added_typed_and_found_by_its_meeting(
    queue: QueueStore, make_user: Callable[[str], UserSession]
) -> None:
    alice = make_user("alice")
    recorded = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
    row = queue.add(alice.id, "1004", recorded_at=recorded)
    assert isinstance(row, QueueRow)
    assert (row.user_id, row.meeting_id, row.status) == (alice.id, "1004", Status.PENDING)
    assert row.queued_at and row.recorded_at.startswith("2026-11-30 09:30:00")
    assert queue.any_for(alice.id, "1004") == row
    assert queue.any_for(alice.id, "1005") is None
    assert queue.get(row.id) == row and queue.status(row.id) == Status.PENDING


def test_a_meeting_is_queued_once_while_a_row_for_it_is_active(
    queue: QueueStore, make_user: Callable[[str], UserSession]
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    first = queue.add(alice.id, "1004")
    with pytest.raises(PocketBaseValidation):
        queue.add(alice.id, "1004")  # PocketBase's unique index on active rows
    assert queue.add_once(alice.id, "1004") is None
    assert queue.add_once(bob.id, "1004") is not None  # another user's meeting is theirs
    queue.cancel(first.id)
    assert queue.add_once(alice.id, "1004") is None  # any row at all: auto-move leaves it
    assert queue.add(alice.id, "1004").status == Status.PENDING  # by hand: queued again


def test_only_active_rows_are_cancelled_and_only_failed_ones_retried(
    pb: PocketBase, queue: QueueStore, make_user: Callable[[str], UserSession]
) -> None:
    alice = make_user("alice")
    row = queue.add(alice.id, "1004")
    with pytest.raises(QueueRefused, match="only failed rows can be retried"):
        queue.retry(row.id)
    cancelled = queue.cancel(row.id)
    assert (cancelled.status, cancelled.position) == (Status.CANCELLED, 0)
    with pytest.raises(QueueRefused, match="only pending or processing rows can be cancelled"):
        queue.cancel(row.id)
    with pytest.raises(QueueRefused, match="does not exist"):
        queue.cancel("nosuchrow000000")
    failed = queue.add(alice.id, "1005")
    pb.update("queue", failed.id, {"status": "failed", "error_message": "Loom said no"})
    later = queue.add(alice.id, "1006")
    retried = queue.retry(failed.id)
    assert retried.status == Status.PENDING and retried.queued_at > later.queued_at
    assert queue.count_active(alice.id) == 2


def test_a_users_rows_come_newest_first_and_the_dispatcher_sees_the_active_ones(
    queue: QueueStore, make_user: Callable[[str], UserSession]
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    made = [queue.add(alice.id, str(1000 + n)) for n in range(3)]
    other = queue.add(bob.id, "2000")
    queue.cancel(made[1].id)
    assert [r.id for r in queue.of_user(alice.id)] == [r.id for r in reversed(made)]
    assert {r.id for r in queue.of_user()} == {*(r.id for r in made), other.id}
    active = queue.active()
    assert {r.id for r in active} == {made[0].id, made[2].id, other.id}
    assert all(isinstance(r, QueueRow) and r.status == Status.PENDING for r in active)
    assert queue.write_positions({made[0].id: 2, made[2].id: 3, other.id: 1}) == 3
    assert sorted(r.position for r in queue.active()) == [1, 2, 3]

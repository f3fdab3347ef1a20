"""The dispatch plan: round-robin across users, work-conserving caps, waits, positions."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from fathom2loom.dispatch_plan import plan_dispatch
from fathom2loom.pocketbase.dates import pb_date
from fathom2loom.queue_rows import QueueRow, Status

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def row(
    row_id: str, user: str, minute: int, status: str = "pending", wait: float | None = None
) -> QueueRow:
    """A row queued at 10:`minute`; `wait` seconds from NOW until a processing row may go again."""
    due = "" if wait is None else pb_date(NOW + timedelta(seconds=wait))
    queued = f"2026-11-25 10:{minute:02d}:00.000Z"
    return QueueRow(row_id, user, "1", Status(status), queued_at=queued, next_attempt_at=due)


def plan(rows: list[QueueRow], alive: set[str], limit: int, cap: int) -> object:
    return plan_dispatch(rows, alive, max_in_flight=limit, per_user=cap, now=NOW)


def test_one_meeting_is_not_held_back_by_a_big_backlog() -> None:
    # Given user a with 50 rows queued first and user b with one row queued after them all
    rows = [row(f"a{n:02d}", "a", n) for n in range(50)] + [row("b00", "b", 59)]
    made = plan_dispatch(rows, set(), max_in_flight=2, per_user=1, now=NOW)
    # Expect b's row in the first dispatch, right after a's first
    assert made.send == ["a00", "b00"]
    assert made.positions["b00"] == 2
    assert [made.positions[f"a{n:02d}"] for n in range(50)] == [1, *range(3, 52)]


def test_a_user_alone_uses_every_free_slot() -> None:
    # Given one user's backlog and four free slots, with a share of two per user
    rows = [row(f"a{n}", "a", n) for n in range(10)]
    made = plan_dispatch(rows, set(), max_in_flight=4, per_user=2, now=NOW)
    # Expect the cap not to leave slots idle: it only yields to other users
    assert made.send == ["a0", "a1", "a2", "a3"]


def test_the_cap_yields_to_other_users_rows() -> None:
    # Given a, with one row started, and b, both with rows waiting to start
    rows = [row("a1", "a", 1, "processing"), row("a2", "a", 2), row("b1", "b", 3)]
    made = plan_dispatch(rows, {"a1"}, max_in_flight=2, per_user=1, now=NOW)
    # Expect b's row to take the one free slot; a's goes next, work-conserving
    assert made.send == ["b1"]
    assert made.positions == {"a1": 0, "b1": 1, "a2": 2}
    assert plan_dispatch(rows, {"a1"}, max_in_flight=5, per_user=1, now=NOW).send == ["b1", "a2"]


def test_started_rows_waiting_for_fathom_count_against_the_cap() -> None:
    # Given a's two rows waiting for Fathom's render (no worker holds them), and b's new row
    rows = [
        row("a1", "a", 1, "processing", wait=60),
        row("a2", "a", 2, "processing", wait=60),
        row("a3", "a", 3),
        row("b1", "b", 4),
    ]
    made = plan_dispatch(rows, set(), max_in_flight=1, per_user=2, now=NOW)
    # Expect b to start before a starts a third; a's waits hold no slot and are not sent
    assert made.send == ["b1"] and made.resume == []
    assert made.next_due == NOW + timedelta(seconds=60)


def test_a_row_whose_wait_is_over_goes_again_before_new_rows() -> None:
    rows = [row("a1", "a", 1, "processing", wait=-1), row("a2", "a", 0), row("b1", "b", 2)]
    made = plan_dispatch(rows, set(), max_in_flight=2, per_user=5, now=NOW)
    assert made.resume == ["a1"] and made.send == ["b1"]
    assert made.order == ["a1", "b1"]


def test_a_second_plan_over_the_same_state_changes_no_position() -> None:
    rows = [row(f"{u}{n}", u, n + i) for i, u in enumerate("abc") for n in range(5)]
    first = plan_dispatch(rows, set(), max_in_flight=4, per_user=2, now=NOW)
    # The rows as stored after the first sync: its positions written, its sends alive
    stored = [replace(r, position=first.positions[r.id]) for r in rows]
    second = plan_dispatch(stored, set(first.send), max_in_flight=4, per_user=2, now=NOW)
    assert second.send == [] and second.changed_positions(stored) == {}


def test_processing_rows_whose_task_is_gone_are_rescued() -> None:
    rows = [row("a1", "a", 1, "processing"), row("b1", "b", 2, "processing")]
    made = plan_dispatch(rows, {"b1"}, max_in_flight=5, per_user=2, now=NOW)
    assert made.rescue == ["a1"] and made.send == []


def test_already_sent_rows_keep_the_front_of_the_line() -> None:
    rows = [row("a1", "a", 1), row("a2", "a", 2), row("b1", "b", 3)]
    made = plan_dispatch(rows, {"a2"}, max_in_flight=1, per_user=5, now=NOW)
    assert made.send == []  # max in flight reached by a2
    assert made.positions["a2"] == 1


@pytest.mark.parametrize("seed", range(40))
def test_what_is_sent_is_always_the_head_of_the_line(seed: int) -> None:
    rng = random.Random(seed)
    users = [f"u{n}" for n in range(rng.randint(1, 6))]
    rows = []
    for n in range(rng.randint(0, 60)):
        status = rng.choice(["pending"] * 4 + ["processing"])
        wait = rng.choice([None, -5.0, 30.0]) if status == "processing" else None
        rows.append(row(f"r{n:03d}", rng.choice(users), rng.randint(0, 59), status, wait))
    alive = {r.id for r in rows if rng.random() < 0.3}
    cap, limit = rng.randint(1, 4), rng.randint(1, 12)
    made = plan_dispatch(rows, alive, max_in_flight=limit, per_user=cap, now=NOW)

    pending = [r for r in rows if r.status == "pending"]
    live = [r for r in pending if r.id in alive]
    # Positions are 1..n over pending rows, 0 for processing ones
    assert sorted(made.positions[r.id] for r in pending) == list(range(1, len(pending) + 1))
    assert all(made.positions[r.id] == 0 for r in rows if r.status == "processing")
    # The rows handed to workers (before or by this plan) hold the front of the line
    front = {r.id for r in live} | set(made.send)
    assert {r.id for r in pending if made.positions[r.id] <= len(front)} == front
    # And planning again over the state this plan leaves changes nothing
    stored = [replace(r, position=made.positions[r.id]) for r in rows]
    again = plan_dispatch(
        stored, alive | set(made.order), max_in_flight=limit, per_user=cap, now=NOW
    )
    assert again.order == [] and again.changed_positions(stored) == {}
    # Nothing alive or still waiting is sent, and no more than the free slots
    assert not set(made.order) & alive
    assert not {r.id for r in rows if r.waiting_at(NOW)} & set(made.order)
    assert len(made.order) <= max(0, limit - len(alive))
    # Work-conserving: a free slot is left only when no row could take it
    candidates = [r for r in rows if r.id not in alive and not r.waiting_at(NOW)]
    assert len(made.order) == min(len(candidates), max(0, limit - len(alive)))
    # The cap: a user starts a row beyond its share only if no other user's pending row within
    # its own share is left waiting
    started = {
        u: sum(r.user_id == u and (r.status == "processing" or r.id in alive) for r in rows)
        for u in users
    }
    for user in users:
        mine = [r for r in pending if r.user_id == user and r.id in made.send]
        beyond = bool(mine) and started[user] + len(mine) > cap
        if beyond:
            for other in users:
                if other == user:
                    continue
                theirs = [r for r in pending if r.user_id == other and r.id not in alive]
                unsent = [r for r in theirs if r.id not in made.send]
                sent_count = len(theirs) - len(unsent)
                assert not unsent or started[other] + sent_count >= cap

"""The dispatch plan: round-robin across users, caps, rescue, positions = dispatch order."""

from __future__ import annotations

import random

import pytest

from fathom2loom.dispatch_plan import QueuedRow, plan_dispatch


def row(row_id: str, user: str, minute: int, status: str = "pending") -> QueuedRow:
    return QueuedRow(row_id, user, status, f"2026-11-25 10:{minute:02d}:00.000Z", 0)


def test_one_meeting_is_not_held_back_by_a_big_backlog() -> None:
    # Given user a with 50 rows queued first and user b with one row queued after them all
    rows = [row(f"a{n:02d}", "a", n) for n in range(50)] + [row("b00", "b", 59)]
    plan = plan_dispatch(rows, set(), max_in_flight=2, per_user=1)
    # Expect b's row in the first dispatch, right after a's first
    assert plan.send == ["a00", "b00"]
    assert plan.positions["b00"] == 2
    assert [plan.positions[f"a{n:02d}"] for n in range(50)] == [1, *range(3, 52)]


def test_rows_in_flight_count_against_their_user() -> None:
    rows = [row("a1", "a", 1, "processing"), row("a2", "a", 2), row("b1", "b", 3)]
    plan = plan_dispatch(rows, {"a1"}, max_in_flight=5, per_user=1)
    assert plan.send == ["b1"]
    assert plan.positions == {"a1": 0, "b1": 1, "a2": 2}


def test_a_second_plan_over_the_same_state_changes_no_position() -> None:
    rows = [row(f"{u}{n}", u, n + i) for i, u in enumerate("abc") for n in range(5)]
    first = plan_dispatch(rows, set(), max_in_flight=4, per_user=2)
    # The rows as stored after the first sync: its positions written, its sends alive
    stored = [
        QueuedRow(r.id, r.user_id, r.status, r.queued_at, first.positions[r.id]) for r in rows
    ]
    second = plan_dispatch(stored, set(first.send), max_in_flight=4, per_user=2)
    assert second.send == [] and second.changed_positions(stored) == {}


def test_processing_rows_whose_task_is_gone_are_rescued() -> None:
    rows = [row("a1", "a", 1, "processing"), row("b1", "b", 2, "processing")]
    plan = plan_dispatch(rows, {"b1"}, max_in_flight=5, per_user=2)
    assert plan.rescue == ["a1"] and plan.send == []


def test_already_sent_rows_keep_the_front_of_the_line() -> None:
    rows = [row("a1", "a", 1), row("a2", "a", 2), row("b1", "b", 3)]
    plan = plan_dispatch(rows, {"a2"}, max_in_flight=1, per_user=5)
    assert plan.send == []  # max in flight reached by a2
    assert plan.positions["a2"] == 1


@pytest.mark.parametrize("seed", range(40))
def test_what_is_sent_is_always_the_head_of_the_line(seed: int) -> None:
    rng = random.Random(seed)
    users = [f"u{n}" for n in range(rng.randint(1, 6))]
    rows = []
    for n in range(rng.randint(0, 60)):
        status = rng.choice(["pending"] * 4 + ["processing"])
        rows.append(row(f"r{n:03d}", rng.choice(users), rng.randint(0, 59), status))
    alive = {r.id for r in rows if rng.random() < 0.3}
    cap, limit = rng.randint(1, 4), rng.randint(1, 12)
    plan = plan_dispatch(rows, alive, max_in_flight=limit, per_user=cap)

    pending = [r for r in rows if r.status == "pending"]
    live = [r for r in pending if r.id in alive]
    # Positions are 1..n over pending rows, 0 for processing ones
    assert sorted(plan.positions[r.id] for r in pending) == list(range(1, len(pending) + 1))
    assert all(plan.positions[r.id] == 0 for r in rows if r.status == "processing")
    # The rows handed to workers (before or by this plan) hold the front of the line
    front = {r.id for r in live} | set(plan.send)
    assert {r.id for r in pending if plan.positions[r.id] <= len(front)} == front
    # And planning again over the state this plan leaves changes nothing
    stored = [QueuedRow(r.id, r.user_id, r.status, r.queued_at, plan.positions[r.id]) for r in rows]
    again = plan_dispatch(
        stored, alive | front | set(plan.rescue), max_in_flight=limit, per_user=cap
    )
    assert again.send == [] and again.changed_positions(stored) == {}
    # And the caps hold
    in_flight = len(alive & {r.id for r in rows}) + len(plan.rescue) + len(plan.send)
    assert in_flight <= max(limit, len(alive & {r.id for r in rows}) + len(plan.rescue))
    for user in users:
        mine = [r for r in rows if r.user_id == user]
        busy = sum(r.id in alive or r.status == "processing" for r in mine)
        sent = sum(r.id in plan.send for r in mine)
        assert sent == 0 or busy + sent <= cap

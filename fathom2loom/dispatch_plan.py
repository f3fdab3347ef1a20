"""The dispatch order: who goes next, fairly, and every pending row's place in line.

Each waiting row gets a slot number `k` = its user's rows already in flight + its index among
the user's waiting rows (oldest first). Rows are ordered by `k`, then by the user's oldest waiting
row, then by their own `queued_at`: round-robin across users, so a user with 500 rows waits at
most one slot longer than a user with one. Because a per-user cap `c` only ever stops rows with
`k >= c`, and those all sort after every row with `k < c`, what the dispatcher sends is always a
prefix of this order: positions are exactly the order rows will be dispatched in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["DispatchPlan", "QueuedRow", "plan_dispatch"]


@dataclass(frozen=True)
class QueuedRow:
    id: str
    user_id: str
    status: str
    queued_at: str  # PocketBase date text; sorts chronologically
    position: int


@dataclass
class DispatchPlan:
    send: list[str] = field(default_factory=list)  # waiting rows to send now, in order
    rescue: list[str] = field(default_factory=list)  # processing rows whose task is gone
    positions: dict[str, int] = field(default_factory=dict)  # every row's desired position

    def changed_positions(self, rows: Iterable[QueuedRow]) -> dict[str, int]:
        return {r.id: self.positions[r.id] for r in rows if r.position != self.positions[r.id]}


def _line(
    rows: list[QueuedRow], alive: set[str]
) -> tuple[defaultdict[str, int], list[QueuedRow], list[tuple[int, QueuedRow]]]:
    """In-flight counts per user, pending rows with a live task, and the waiting rows in order."""
    in_flight: defaultdict[str, int] = defaultdict(int)
    live_pending: list[QueuedRow] = []
    waiting: defaultdict[str, list[QueuedRow]] = defaultdict(list)
    for row in rows:
        if row.status == "processing" or row.id in alive:
            in_flight[row.user_id] += 1
            if row.status == "pending":
                live_pending.append(row)
        else:
            waiting[row.user_id].append(row)
    slots: list[tuple[int, str, str, str, QueuedRow]] = []
    for user_id, user_rows in waiting.items():
        user_rows.sort(key=lambda r: (r.queued_at, r.id))
        first = user_rows[0].queued_at
        for index, row in enumerate(user_rows):
            slots.append((in_flight[user_id] + index, first, user_id, row.queued_at, row))
    slots.sort(key=lambda s: (s[0], s[1], s[2], s[3], s[4].id))
    live_pending.sort(key=lambda r: (r.queued_at, r.id))
    return in_flight, live_pending, [(s[0], s[4]) for s in slots]


def plan_dispatch(
    rows: Iterable[QueuedRow], alive: set[str], *, max_in_flight: int, per_user: int
) -> DispatchPlan:
    """Decide what to send now and every row's position; `alive` are rows with a live task."""
    rows = list(rows)
    plan = DispatchPlan()
    plan.rescue = [r.id for r in rows if r.status == "processing" and r.id not in alive]
    in_flight, _, slots = _line(rows, alive)
    total = sum(in_flight.values())
    for k, row in slots:
        if total >= max_in_flight or k >= per_user:
            break
        plan.send.append(row.id)
        total += 1
    # Positions describe the line as it stands once this sync's sends are made: rows handed
    # to workers first (oldest first), then the waiting rows in the order they will go.
    _, live_pending, slots = _line(rows, alive | set(plan.send) | set(plan.rescue))
    line = [r.id for r in live_pending] + [row.id for _, row in slots]
    plan.positions = {r.id: 0 for r in rows if r.status == "processing"}
    plan.positions.update({row_id: n for n, row_id in enumerate(line, start=1)})
    return plan

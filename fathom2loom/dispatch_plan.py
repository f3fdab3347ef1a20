"""The dispatch order: who goes next, fairly, and every pending row's place in line.

Rows that may start now are the candidates: pending rows without a live task, and processing rows
without one whose wait is over (a render, a rate limit, a fault's backoff) or whose worker died.
Each candidate gets a slot number `k` = its user's rows with a live task + its index among the
user's candidates (resumptions first, then oldest first). Candidates go in the order of `k`, then
of the user's oldest candidate, then of their own `queued_at`: round-robin across users over the
worker slots, so a user with 500 rows waits at most one slot longer than a user with one.

`per_user` caps how many rows one user has started (processing, running or waiting for Fathom or
Loom) while other users' rows wait to start: a pending row beyond its user's cap goes after every
other user's pending row within theirs. The cap is work-conserving: when nobody else waits, a
user alone may use every free slot (`max_in_flight`). What is sent is always a prefix of this
order, so positions are exactly the order pending rows will be dispatched in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from fathom2loom.pocketbase.dates import parse_date
from fathom2loom.queue_rows import QueueRow

__all__ = ["DispatchPlan", "plan_dispatch"]


@dataclass
class DispatchPlan:
    send: list[str] = field(default_factory=list)  # pending rows to send now, in order
    resume: list[str] = field(default_factory=list)  # processing rows whose wait is over
    rescue: list[str] = field(default_factory=list)  # processing rows whose worker is gone
    positions: dict[str, int] = field(default_factory=dict)  # every row's desired position
    order: list[str] = field(default_factory=list)  # all of the above, in dispatch order
    next_due: datetime | None = None  # the earliest end of a wait, if any row waits

    def changed_positions(self, rows: Iterable[QueueRow]) -> dict[str, int]:
        return {r.id: self.positions[r.id] for r in rows if r.position != self.positions[r.id]}


def _slots(
    rows: list[QueueRow], alive: set[str], now: datetime, per_user: int
) -> tuple[int, list[QueueRow]]:
    """The number of live tasks, and the candidates in dispatch order."""
    in_flight: defaultdict[str, int] = defaultdict(int)
    started: defaultdict[str, int] = defaultdict(int)
    candidates: defaultdict[str, list[QueueRow]] = defaultdict(list)
    for row in rows:
        if row.id in alive:
            in_flight[row.user_id] += 1
        if row.status == "processing" or row.id in alive:
            started[row.user_id] += 1
        if row.id not in alive and not row.waiting_at(now):
            candidates[row.user_id].append(row)
    slots: list[tuple[bool, int, str, str, str, str]] = []
    by_id: dict[str, QueueRow] = {}
    for user_id, user_rows in candidates.items():
        user_rows.sort(key=lambda r: (r.status != "processing", r.queued_at, r.id))
        first = user_rows[0].queued_at if user_rows[0].status == "pending" else ""
        new = 0
        for index, row in enumerate(user_rows):
            over_cap = row.status == "pending" and started[user_id] + new >= per_user
            new += row.status == "pending"
            k = in_flight[user_id] + index
            slots.append((over_cap, k, first, user_id, row.queued_at, row.id))
            by_id[row.id] = row
    slots.sort()
    return sum(in_flight.values()), [by_id[s[-1]] for s in slots]


def plan_dispatch(
    rows: Iterable[QueueRow],
    alive: set[str],
    *,
    max_in_flight: int,
    per_user: int,
    now: datetime,
) -> DispatchPlan:
    """Decide what to send now and every row's position; `alive` are rows with a live task."""
    rows = list(rows)
    plan = DispatchPlan()
    total, order = _slots(rows, alive, now, per_user)
    for row in order[: max(0, max_in_flight - total)]:
        if row.status == "pending":
            plan.send.append(row.id)
        elif row.next_attempt_at:
            plan.resume.append(row.id)
        else:
            plan.rescue.append(row.id)
        plan.order.append(row.id)
    waits = [parse_date(r.next_attempt_at) for r in rows if r.waiting_at(now) and r.id not in alive]
    plan.next_due = min((w for w in waits if w is not None), default=None)
    # Positions describe the line as it stands once this sync's sends are made: pending rows
    # handed to workers first (oldest first), then the waiting ones in the order they will go.
    sent = set(plan.order)
    handed = sorted(
        (r for r in rows if r.status == "pending" and (r.id in alive or r.id in sent)),
        key=lambda r: (r.queued_at, r.id),
    )
    _, later = _slots(rows, alive | sent, now, per_user)
    line = [r.id for r in handed] + [r.id for r in later if r.status == "pending"]
    plan.positions = {r.id: 0 for r in rows if r.status == "processing"}
    plan.positions.update({row_id: n for n, row_id in enumerate(line, start=1)})
    return plan

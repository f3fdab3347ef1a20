"""Cost of one dispatcher sync over 10,000 pending rows from 100 users, against real servers.

Starts its own PocketBase (with the project's hooks) and Redis, fills the queue, then measures
syncs: the first one (every position written), a steady one (nothing changed), and one after the
head of the line moved on (every position shifts). For each: wall time, PocketBase requests, and
the realtime events it raised, heard by a superuser subscribed to `queue/*` and to the positions
topic, with how many of them would wake the dispatcher again (`queue_events.NewWorkFilter`).
The baseline, measured in the same run on the same servers, is the same head-moved sync through
the public APIs (records list + batch API): what a PocketBase without the hooks gets.

    .venv/bin/python bench/sync_queue.py [--rows 10000 --users 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import PASSWORD, local_stack
from fathom2loom.dispatcher import SyncReport, sync_once
from fathom2loom.inflight import InFlight
from fathom2loom.pocketbase.client import BatchOp, PocketBase
from fathom2loom.pocketbase.realtime import RealtimeListener
from fathom2loom.queue_events import NewWorkFilter

POSITIONS_TOPIC = "fathom2loom/positions"


class Counter:
    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, request: httpx.Request) -> None:
        self.requests += 1


class Events:
    """What a realtime subscriber hears, and what of it would wake the dispatcher."""

    def __init__(self, pb: PocketBase) -> None:
        self.lock = threading.Lock()
        self.record_events = self.position_messages = self.rows_announced = self.wakes = 0
        self.last = time.monotonic()
        self.filter = NewWorkFilter()
        self.listener = RealtimeListener(pb, ["queue/*", POSITIONS_TOPIC], self._on_event)
        threading.Thread(target=self.listener.run, daemon=True).start()
        while self.listener.connections == 0:
            time.sleep(0.05)

    def _on_event(self, topic: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.last = time.monotonic()
            if topic == POSITIONS_TOPIC:
                self.position_messages += 1
                self.rows_announced += len(data["positions"])
            else:
                self.record_events += 1
                self.wakes += self.filter.means_new_work(data["action"], data["record"])

    def settle(self, quiet: float = 1.0) -> None:
        """Wait until nothing has arrived for `quiet` seconds (events trail their writes)."""
        time.sleep(quiet)
        while time.monotonic() - self.last < quiet:
            time.sleep(0.1)

    def take(self) -> tuple[int, int, int, int]:
        self.settle()
        with self.lock:
            counts = self.record_events, self.position_messages, self.rows_announced, self.wakes
            self.record_events = self.position_messages = self.rows_announced = self.wakes = 0
        return counts


def fill(pb: PocketBase, rows: int, users: int) -> None:
    user_ids = [
        pb.create(
            "users", {"email": f"u{n}@b.test", "password": PASSWORD, "passwordConfirm": PASSWORD}
        )["id"]
        for n in range(users)
    ]
    ops = [
        BatchOp(
            "POST",
            "queue",
            body={
                "user_id": user_ids[n % users],
                "meeting_id": str(n),
                "status": "pending",
                "queued_at": f"2026-11-25 {n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
            },
        )
        for n in range(rows)
    ]
    pb.batch(ops)


@dataclass
class Step:
    label: str
    seconds: float
    requests: int
    report: SyncReport
    events: tuple[int, int, int, int]


def measure(label: str, counter: Counter, events: Events, sync: Callable[[], Any]) -> Step:
    events.take()  # Whatever came before belongs to no step
    before = counter.requests
    started = time.perf_counter()
    report = sync()
    seconds = time.perf_counter() - started
    return Step(label, seconds, counter.requests - before, report, events.take())


def finish(pb: PocketBase, client: redis.Redis, sent: list[str]) -> None:
    """The workers finish what was sent: the line moves up by that many places."""
    pb.batch(
        [BatchOp("PATCH", "queue", id=r, body={"status": "completed", "position": 0}) for r in sent]
    )
    inflight = InFlight(client)
    for row_id in sent:
        inflight.release(row_id)
    sent.clear()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=200)
    args = parser.parse_args()
    with local_stack(pb_batch_size=args.batch_size) as settings:
        counter = Counter()
        http = httpx.Client(timeout=60, event_hooks={"request": [counter]})
        pb = PocketBase.from_settings(settings, http=http)
        client = redis.Redis.from_url(settings.redis_url)
        events = Events(PocketBase.from_settings(settings))
        fill(pb, args.rows, args.users)
        sent: list[str] = []

        def sync() -> SyncReport:
            report = sync_once(pb, client, settings, sent.append)
            assert report is not None
            return report

        steps = [measure("first sync", counter, events, sync)]
        steps.append(measure("steady sync", counter, events, sync))
        finish(pb, client, sent)
        steps.append(measure("after the head moved", counter, events, sync))
        # Baseline: the same sync through the public APIs, as without the hooks
        pb.bulk.route_missing = True
        finish(pb, client, sent)
        steps.append(measure("baseline: public APIs", counter, events, sync))
        exact = list(pb.list_all("queue", filter='status = "pending"', fields="position"))
        assert sorted(r["position"] for r in exact) == list(range(1, len(exact) + 1)), "inexact"
        events.listener.stop.set()
    base = steps[-1]
    print(f"{args.rows} pending rows, {args.users} users; positions exact after every step")
    header = f"{'step':<24} {'seconds':>8} {'vs base':>8} {'requests':>9} {'sent':>5}"
    header += f" {'positions':>9} {'rec.events':>10} {'pos.msgs':>8} {'rows ann.':>9}"
    print(header + f" {'wakes':>5}")
    for step in steps:
        written = step.report.positions_written
        record_events, messages, announced, wakes = step.events
        print(
            f"{step.label:<24} {step.seconds:>8.2f} {base.seconds / step.seconds:>7.1f}x"
            f" {step.requests:>9} {len(step.report.sent):>5} {written:>9} {record_events:>10}"
            f" {messages:>8} {announced:>9} {wakes:>5}"
        )
    print(json.dumps({s.label: round(s.seconds, 3) for s in steps}))


if __name__ == "__main__":
    main()

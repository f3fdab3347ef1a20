"""Cost of one dispatcher sync over 10,000 pending rows from 100 users, against real servers.

Starts its own PocketBase and Redis, fills the queue, then measures syncs (wall time and
PocketBase requests): the first one (every position written), a steady one (nothing changed),
and one after the head of the line moved on (every position shifts). The baseline, measured in
the same run, writes the same positions one request per row.

    .venv/bin/python bench/sync_queue.py [--rows 10000 --users 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import PASSWORD, local_stack
from fathom2loom.bootstrap import bootstrap
from fathom2loom.dispatcher import sync_once
from fathom2loom.inflight import InFlight
from fathom2loom.pocketbase.client import BatchOp, PocketBase


class Counter:
    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, request: httpx.Request) -> None:
        self.requests += 1


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


def measure(label: str, counter: Counter, action) -> tuple[str, float, int, object]:  # type: ignore[no-untyped-def]
    before = counter.requests
    started = time.perf_counter()
    result = action()
    return label, time.perf_counter() - started, counter.requests - before, result


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
        bootstrap(settings, pb)
        fill(pb, args.rows, args.users)
        client = redis.Redis.from_url(settings.redis_url)
        sent: list[str] = []
        results = [
            measure("first sync", counter, lambda: sync_once(pb, client, settings, sent.append))
        ]
        results.append(
            measure("steady sync", counter, lambda: sync_once(pb, client, settings, sent.append))
        )
        # The workers finish what was sent; the line moves up by that many places
        pb.batch(
            [
                BatchOp("PATCH", "queue", id=r, body={"status": "completed", "position": 0})
                for r in sent
            ]
        )
        inflight = InFlight(client)
        for row_id in sent:
            inflight.release(row_id)
        results.append(
            measure(
                "after the head moved",
                counter,
                lambda: sync_once(pb, client, settings, sent.append),
            )
        )
        # Baseline: the same number of position writes, one request each
        changed = results[-1][3].positions_written  # type: ignore[attr-defined]
        pending = list(
            pb.list_all("queue", filter='status = "pending"', fields="id,position", per_page=1000)
        )
        targets = pending[:changed]
        results.append(
            measure(
                "baseline: 1 req/row",
                counter,
                lambda: [
                    pb.update("queue", r["id"], {"position": r["position"] + 1}) for r in targets
                ],
            )
        )
    label, base_seconds, _, written_list = results[-1]
    per_row = base_seconds / max(len(written_list), 1)  # type: ignore[arg-type]
    print(
        f"{args.rows} pending rows, {args.users} users, batches of {args.batch_size};"
        f" baseline {per_row * 1000:.2f} ms per row"
    )
    header = f"{'step':<22} {'seconds':>8} {'requests':>9} {'sent':>5} {'positions':>10}"
    print(header + f" {'1 req/row s':>12} {'speedup':>8}")
    for label, seconds, requests, report in results[:-1]:
        written = report.positions_written  # type: ignore[attr-defined]
        naive = seconds - 0 if not written else written * per_row
        print(
            f"{label:<22} {seconds:>8.2f} {requests:>9} {len(report.sent):>5} {written:>10}"  # type: ignore[attr-defined]
            f" {naive:>12.2f} {naive / seconds:>7.1f}x"
        )
    print(f"{'baseline: 1 req/row':<22} {base_seconds:>8.2f} {len(written_list):>9}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()

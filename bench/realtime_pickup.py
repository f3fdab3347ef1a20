"""How soon a new pending row is dispatched: realtime wake-up against beat's tick alone.

Starts its own PocketBase and Redis, runs the dispatcher's realtime listener in this process (as
the beat process does) with a send that notes the time, creates rows one by one and measures
creation → send. The baseline, measured in the same run, is the tick alone (`--tick` seconds).

    .venv/bin/python bench/realtime_pickup.py [--samples 20 --tick 5]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import PASSWORD, local_stack
from fathom2loom.dispatcher import sync_once
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.dates import now_iso
from fathom2loom.pocketbase.realtime import RealtimeListener
from fathom2loom.settings import Settings


def measure(pb: PocketBase, user: str, sent: dict[str, float], samples: int) -> list[float]:
    latencies = []
    for n in range(samples):
        created = time.monotonic()
        row = pb.create(
            "queue",
            {"user_id": user, "meeting_id": str(n), "status": "pending", "queued_at": now_iso()},
        )
        while row["id"] not in sent:
            time.sleep(0.001)
        latencies.append(sent[row["id"]] - created)
        pb.update("queue", row["id"], {"status": "completed"})
        time.sleep(0.05)
    return latencies


def run(settings: Settings, samples: int, tick: float, realtime: bool) -> list[float]:
    pb = PocketBase.from_settings(settings)
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    user = pb.create(
        "users",
        {
            "email": f"{secrets.token_hex(4)}@b.test",
            "password": PASSWORD,
            "passwordConfirm": PASSWORD,
        },
    )["id"]
    sent: dict[str, float] = {}
    wake, stop = threading.Event(), threading.Event()

    def send(row_id: str) -> None:
        sent[row_id] = time.monotonic()

    def on_event(topic: str, data: dict[str, object]) -> None:
        record = data.get("record")
        if isinstance(record, dict) and record.get("status") == "pending":
            wake.set()

    def syncer() -> None:
        next_tick = time.monotonic() + tick
        while not stop.is_set():
            woke = wake.wait(max(0.0, next_tick - time.monotonic()))
            wake.clear()
            if not woke:
                next_tick += tick
            if not stop.is_set():
                sync_once(pb, client, settings, send)

    listener = RealtimeListener(pb, ["queue/*"], on_event)
    if realtime:
        threading.Thread(target=listener.run, daemon=True).start()
        while listener.connections == 0:
            time.sleep(0.01)
    threading.Thread(target=syncer, daemon=True).start()
    try:
        return measure(pb, user, sent, samples)
    finally:
        stop.set()
        listener.stop.set()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--tick", type=float, default=5.0)
    args = parser.parse_args()
    with local_stack() as settings:
        fast = run(settings, args.samples, args.tick, realtime=True)
        slow = run(settings, max(4, args.samples // 4), args.tick, realtime=False)
    print(f"new row → dispatched, {args.samples} samples (tick every {args.tick:.0f} s)")
    print(f"{'path':<22} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'vs tick':>8}")
    base = statistics.median(slow)
    for label, values in (("realtime wake-up", fast), ("beat tick only", slow)):
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        median = statistics.median(values)
        print(
            f"{label:<22} {median * 1000:>10.0f} {p95 * 1000:>8.0f} {max(values) * 1000:>8.0f}"
            f" {base / median:>7.1f}x"
        )


if __name__ == "__main__":
    main()

"""Scale-out: 16 I/O-bound transfers on 1 slot, on 1 process x 4 slots, on 4 processes x 1 slot,
and one user's backlog of 16 on 4 processes x 1 slot.

Starts its own PocketBase and Redis, the stand-ins (in this process), a beat and the workers of
each layout, all with production defaults. Every recording first renders at Fathom (longer than a
transfer waits in its slot, so each row records its wait and comes back), then streams through a
bandwidth-limited connection per download, so a transfer is bound by I/O, not CPU. Wall time runs
from queueing the 16 rows to the last one completed; the baseline is the 1-slot layout, measured
in the same run. The split column is how many transfers each worker process finished.

    .venv/bin/python bench/scale_out.py [--size-mb 50 --bandwidth-mb 5 --render 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import PASSWORD, local_stack, stack_env
from devkit.local_celery import CeleryBeat, CeleryProcess, CeleryWorker
from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin
from fathom2loom.api_keys import store_keys
from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import BatchOp, PocketBase
from fathom2loom.pocketbase.dates import now_iso
from fathom2loom.settings import Settings

ROWS = 16


@dataclass(frozen=True)
class Layout:
    name: str
    slots: tuple[int, ...]  # concurrency of each worker process
    users: int  # the 16 rows are spread over this many users


LAYOUTS = [
    Layout("1 slot (baseline)", (1,), 4),
    Layout("1 process x 4 slots", (4,), 4),
    Layout("4 processes x 1 slot", (1, 1, 1, 1), 4),
    Layout("one user's 16, 4 x 1", (1, 1, 1, 1), 1),
]


def users(pb: PocketBase, settings: Settings, fathom: FathomStandin, count: int) -> list[str]:
    made = []
    for n in range(count):
        email = f"scale{n}-{time.monotonic_ns()}@b.test"
        user = pb.create(
            "users", {"email": email, "password": PASSWORD, "passwordConfirm": PASSWORD}
        )
        key = f"scale-fathom-key-{user['id']}"
        fathom.add_key(key)
        store_keys(pb, KeyBox(settings.encryption_key), user["id"], fathom=key, loom=f"loom-{n}")
        made.append(str(user["id"]))
    return made


def run_layout(
    layout: Layout,
    pb: PocketBase,
    settings: Settings,
    env: dict[str, str],
    fathom: FathomStandin,
    size: int,
    logs: Path,
    first_recording: int,
) -> tuple[float, list[int]]:
    workers: list[CeleryProcess] = [
        CeleryWorker(env, logs / f"{first_recording}-w{n}.log", concurrency=c, name=f"w{n}")
        for n, c in enumerate(layout.slots)
    ]
    for worker in workers:
        worker.start()
    time.sleep(2)  # Workers announce their slots to the dispatcher.
    try:
        owners = users(pb, settings, fathom, layout.users)
        rows = []
        for n in range(ROWS):
            user = owners[n % len(owners)]
            recording = first_recording + n
            fathom.add_meeting(f"scale-fathom-key-{user}", recording, size=size)
            rows.append(
                BatchOp(
                    "POST",
                    "queue",
                    body={
                        "user_id": user,
                        "meeting_id": str(recording),
                        "status": "pending",
                        "queued_at": now_iso(),
                    },
                )
            )
        started = time.monotonic()
        ids = [r["id"] for r in pb.batch(rows)]
        while True:
            statuses = [pb.get("queue", i)["status"] for i in ids]
            if all(s == "completed" for s in statuses):
                break
            if any(s in ("failed", "cancelled") for s in statuses):
                raise RuntimeError(f"a transfer did not complete: {statuses}")
            time.sleep(0.2)
        seconds = time.monotonic() - started
    finally:
        for worker in workers:
            worker.stop()
    split = [w.log_path.read_text(errors="replace").count("completed: Loom video") for w in workers]
    return seconds, split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=float, default=50)
    parser.add_argument("--bandwidth-mb", type=float, default=5)
    parser.add_argument("--render", type=float, default=4)
    args = parser.parse_args()
    size = int(args.size_mb * 1_000_000)
    with tempfile.TemporaryDirectory() as tmp, local_stack() as settings:
        fathom = FathomStandin(
            page_size=50,
            render_seconds=args.render,
            bandwidth=int(args.bandwidth_mb * 1_000_000),
        ).start()
        loom = LoomStandin(storage_dir=Path(tmp) / "loom").start()
        env = stack_env(settings, fathom.url, loom.url)
        beat = CeleryBeat(env, Path(tmp) / "beat.log").start()
        pb = PocketBase.from_settings(settings)
        results = []
        try:
            for n, layout in enumerate(LAYOUTS):
                results.append(
                    run_layout(layout, pb, settings, env, fathom, size, Path(tmp), 1000 * (n + 1))
                )
                for video in loom.videos():  # Keep the disk free between layouts.
                    loom.video_path(video["id"]).unlink(missing_ok=True)
        finally:
            beat.stop()
            fathom.stop()
            loom.stop()
    per_transfer = size / (args.bandwidth_mb * 1_000_000)
    print(
        f"{ROWS} transfers of {args.size_mb:g} MB at {args.bandwidth_mb:g} MB/s per download"
        f" ({per_transfer:.0f} s of streaming each), Fathom renders {args.render:g} s first"
    )
    print(f"{'layout':<24} {'seconds':>8} {'speedup':>8}  split")
    baseline = results[0][0]
    for layout, (seconds, split) in zip(LAYOUTS, results, strict=True):
        print(f"{layout.name:<24} {seconds:>8.1f} {baseline / seconds:>7.2f}x  {split}")


if __name__ == "__main__":
    main()

"""kill -9 drill: how long after a worker dies mid-upload does another worker resume its row?

Starts its own PocketBase and Redis, the stand-ins (in this process), a beat and two workers with
the production defaults (`TRANSFER_LEASE_SECONDS`, `SYNC_INTERVAL_SECONDS`). Each run queues one
recording, waits until a worker is uploading it, SIGKILLs that worker's whole process group (as
the OOM killer or a lost VM would), and measures the seconds until the other worker's run starts
on the row (its first write, which counts the dead run as an attempt). Then it waits for the row
to complete and counts Loom videos for the recording and bytes sent twice. The killed worker is
started again for the next run.

The bound the design sets is the liveness window plus one sync: the dead worker's lease and
in-flight marker run out after `TRANSFER_LEASE_SECONDS`, and the next sync sends the row again.

    .venv/bin/python bench/kill_drill.py [--runs 5 --size-mb 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import PASSWORD, local_stack, stack_env
from devkit.local_celery import CeleryBeat, CeleryProcess, CeleryWorker
from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin
from fathom2loom.api_keys import store_keys
from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.dates import now_iso
from fathom2loom.transfer.rules import idempotency_key

FATHOM_KEY, LOOM_KEY = "drill-fathom-key-0001", "drill-loom-key-0001"


def drill_once(
    pb: PocketBase,
    user_id: str,
    recording: int,
    size: int,
    fathom: FathomStandin,
    loom: LoomStandin,
    workers: list[CeleryProcess],
) -> dict[str, float]:
    """One drill; `workers[0]` is the only one alive at the start and is the one killed."""
    victim, rescuer = workers
    fathom.add_meeting(FATHOM_KEY, recording, size=size)
    loom.reset()
    loom.set_fault("*", slow_patch_seconds=2.0)  # A slow upload: killed well before its end.
    row = pb.create(
        "queue",
        {
            "user_id": user_id,
            "meeting_id": str(recording),
            "status": "pending",
            "queued_at": now_iso(),
        },
    )["id"]
    rescuer.start()
    while (pb.get("queue", row)["bytes_done"] or 0) < size // 5:
        time.sleep(0.05)
    victim.kill()
    killed_at = time.monotonic()
    loom.clear_faults()
    while pb.get("queue", row)["attempts"] < 1:  # The next run's first write counts the death.
        time.sleep(0.05)
    resumed = time.monotonic() - killed_at
    while (state := pb.get("queue", row))["status"] != "completed":
        if state["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"row ended {state['status']}: {state['error_message']}")
        time.sleep(0.1)
    created = loom.stats()["videos_created_by_key"]
    key = idempotency_key(user_id, recording, 0)
    videos = sum(n for k, n in created.items() if k == key or k.startswith(f"{key}-g"))
    resent = loom.stats()["bytes_received"] - size
    workers.reverse()  # The rescuer is the only worker alive for the next drill.
    return {"resume_s": resumed, "videos": videos, "resent_bytes": resent}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=60)
    args = parser.parse_args()
    size = args.size_mb * 1_000_000
    with tempfile.TemporaryDirectory() as tmp, local_stack() as settings:
        fathom = FathomStandin(page_size=50).start()
        loom = LoomStandin(storage_dir=Path(tmp) / "loom").start()
        fathom.add_key(FATHOM_KEY)
        env = {**stack_env(settings, fathom.url, loom.url), "FATHOM_POLL_INITIAL_SECONDS": "0.5"}
        processes = [CeleryBeat(env, Path(tmp) / "beat.log")]
        workers = [CeleryWorker(env, Path(tmp) / f"w{n}.log", name=f"w{n}") for n in range(2)]
        pb = PocketBase.from_settings(settings)
        try:
            processes[0].start()
            workers[0].start()
            user = pb.create(
                "users",
                {"email": "drill@b.test", "password": PASSWORD, "passwordConfirm": PASSWORD},
            )["id"]
            store_keys(pb, KeyBox(settings.encryption_key), user, fathom=FATHOM_KEY, loom=LOOM_KEY)
            results = [
                drill_once(pb, user, 500 + n, size, fathom, loom, workers) for n in range(args.runs)
            ]
        finally:
            for process in [*workers, *processes]:
                process.stop()
            fathom.stop()
            loom.stop()
    bound = settings.transfer_lease_seconds + settings.sync_interval_seconds
    lease, tick = settings.transfer_lease_seconds, settings.sync_interval_seconds
    print(
        f"{args.runs} runs, {args.size_mb} MB recordings;"
        f" TRANSFER_LEASE_SECONDS={lease:g}, SYNC_INTERVAL_SECONDS={tick:g}"
    )
    print(f"{'run':>3} {'kill→resume s':>14} {'vs bound':>9} {'videos':>7} {'re-sent MB':>11}")
    for n, result in enumerate(results, start=1):
        print(
            f"{n:>3} {result['resume_s']:>14.1f} {result['resume_s'] / bound:>8.2f}x"
            f" {result['videos']:>7.0f} {result['resent_bytes'] / 1e6:>11.1f}"
        )
    times = [r["resume_s"] for r in results]
    print(
        f"median {statistics.median(times):.1f} s, max {max(times):.1f} s"
        f" (bound {bound:g} s = lease + one sync interval; target 60 s)"
    )


if __name__ == "__main__":
    main()

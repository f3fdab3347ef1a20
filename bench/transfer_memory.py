"""Peak memory of one Fathom→Loom transfer through the two clients, by file size.

Each size runs in a fresh child process against stand-ins running in another process, so the
child's peak RSS is the transfer's alone. The baseline is the smallest size, measured in the same
run: memory is flat when the growth ratio stays near 1 while the size ratio grows.

    .venv/bin/python bench/transfer_memory.py              # 64 MiB baseline, 256 MiB, 1 GiB
    .venv/bin/python bench/transfer_memory.py --sizes 32M,128M
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY_FATHOM = "bench-fathom-key"
KEY_LOOM = "bench-loom-key"
RECORDING = 1001


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(fathom_url: str, loom_url: str) -> None:
    """Transfer recording RECORDING and print one JSON line of measurements."""
    import httpx

    from fathom2loom.providers.fathom import FathomClient
    from fathom2loom.providers.loom import LoomClient

    with httpx.Client(timeout=60) as api, httpx.Client(timeout=60) as storage:
        fathom = FathomClient(KEY_FATHOM, http=api, storage_http=storage, base_url=fathom_url)
        fathom.poll_initial = 0.05
        loom = LoomClient(KEY_LOOM, http=api, base_url=loom_url)
        _, file = fathom.wait_for_file(RECORDING, timeout=60)
        video = loom.create_video(
            title="bench",
            description="",
            size_bytes=file.file_size_bytes,
            content_type=file.content_type,
            idempotency_key="bench",
        )
        idle = peak_rss_mib()
        started = time.perf_counter()
        loom.upload(video, lambda offset: fathom.stream(file, start=offset))
        loom.wait_ready(video.id, timeout=60)
        elapsed = time.perf_counter() - started
    print(json.dumps({"idle_mib": idle, "peak_mib": peak_rss_mib(), "seconds": elapsed}))


def run_size(size: int) -> dict[str, float]:
    from bench.servers import standins_process

    with standins_process(KEY_FATHOM, 1, size) as urls:
        done = subprocess.run(
            [sys.executable, __file__, "--child", urls["fathom_url"], urls["loom_url"]],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="64M,256M,1G")
    parser.add_argument("--child", nargs=2, metavar=("FATHOM_URL", "LOOM_URL"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    rows = [(size, run_size(size)) for size in sizes]
    base_size, base = rows[0]
    base_growth = max(base["peak_mib"] - base["idle_mib"], 0.1)
    print(
        f"{'size':>10} {'seconds':>8} {'MiB/s':>7} {'peak RSS MiB':>13} "
        f"{'growth MiB':>11} {'size x':>7} {'growth x':>9}"
    )
    for size, r in rows:
        growth = r["peak_mib"] - r["idle_mib"]
        mib = size / (1 << 20)
        print(
            f"{mib:>8.0f}Mi {r['seconds']:>8.1f} {mib / r['seconds']:>7.0f} "
            f"{r['peak_mib']:>13.1f} {growth:>11.1f} {size / base_size:>7.0f} "
            f"{max(growth, 0.1) / base_growth:>9.2f}"
        )


if __name__ == "__main__":
    main()

"""Transfer throughput: one queue row's whole transfer against a bare stream copy of the same
bytes between the same two servers, measured in the same run.

The stand-ins (Fathom and Loom, one process) serve recordings of `--size` bytes; PocketBase and
Redis are the bench's own. "transfer" is `run_transfer` on a queue row, as a worker runs it: the
row read and claimed, the key decrypted, Fathom's download requested, the Loom video created, the
bytes streamed over tus in 8 MiB bodies with progress written to the row, the video checked and
the row completed. "bare copy" is the least code that moves the same bytes: one GET of the signed
URL and tus PATCHes of the same size, into an upload created beforehand (not timed), nothing
checked, nothing recorded. Each runs `--repeat` times, alternating; the table shows medians.

    .venv/bin/python bench/transfer_throughput.py [--size 256M --repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import PASSWORD, local_stack, standins_process
from bench.transfer_memory import parse_size
from devkit.standins.__main__ import FIRST_RECORDING_ID
from fathom2loom.api_keys import KeyStore, store_keys
from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.dates import now_iso
from fathom2loom.providers.factory import Providers
from fathom2loom.providers.fathom import FathomClient
from fathom2loom.providers.loom import LoomClient
from fathom2loom.queue_store import QueueStore
from fathom2loom.settings import Settings
from fathom2loom.transfer import Done, TransferPorts, run_transfer

FATHOM_KEY = "bench-throughput-fathom-key"
LOOM_KEY = "bench-throughput-loom-key"


def transfer(pb: PocketBase, ports: TransferPorts, user_id: str, recording: int) -> float:
    """Seconds for one queue row's transfer, start to completed."""
    row = pb.create(
        "queue",
        {
            "user_id": user_id,
            "meeting_id": str(recording),
            "status": "pending",
            "queued_at": now_iso(),
        },
    )
    started = time.perf_counter()
    while True:
        step = run_transfer(row["id"], ports)
        if isinstance(step, Done):
            break
        time.sleep(step.seconds)
    seconds = time.perf_counter() - started
    assert step.status == "completed", step
    return seconds


def bare_copy(fathom: FathomClient, loom: LoomClient, recording: int, chunk: int) -> float:
    """Seconds to move the recording's bytes with the least code: GET, then tus PATCHes."""
    _, file = fathom.wait_for_file(recording, timeout=60)
    video = loom.create_video(
        title="bare",
        description="",
        size_bytes=file.file_size_bytes,
        content_type=file.content_type,
        idempotency_key=f"bare-{recording}",
    )
    endpoint = urljoin(loom.base_url + "/", video.upload_endpoint)
    url = loom.tus.create(endpoint, file.file_size_bytes, {"video_id": video.id})
    headers = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
    started = time.perf_counter()
    with httpx.Client(timeout=60) as http, http.stream("GET", str(file.url)) as source:
        offset = 0
        for body in source.iter_bytes(chunk):
            answer = http.patch(
                url, content=body, headers={**headers, "Upload-Offset": str(offset)}
            )
            offset = int(answer.headers["Upload-Offset"])
    seconds = time.perf_counter() - started
    assert offset == file.file_size_bytes, (offset, file.file_size_bytes)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="256M")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = parse_size(args.size)
    with standins_process(FATHOM_KEY, 2 * args.repeat, size) as urls:
        overrides = {
            "fathom_base_url": urls["fathom_url"],
            "loom_base_url": urls["loom_url"],
            # The stand-ins render and process at once: poll soon, as the bare copy does not
            # wait at all. What is measured is moving the bytes, not waiting for providers.
            "fathom_poll_initial_seconds": 0.05,
            "loom_poll_initial_seconds": 0.05,
        }
        with local_stack(**overrides) as settings, httpx.Client(timeout=60) as http:
            ours, bare = measure(settings, http, size, args.repeat)
    mib = size / (1 << 20)
    print(f"{mib:.0f} MiB per recording, {args.repeat} runs each, medians")
    print(f"{'path':<34} {'seconds':>8} {'MiB/s':>7} {'vs bare':>8}")
    for label, runs in (
        ("transfer (run_transfer on a row)", ours),
        ("bare copy (GET → PATCH)", bare),
    ):
        median = statistics.median(runs)
        print(
            f"{label:<34} {median:>8.2f} {mib / median:>7.0f}"
            f" {statistics.median(bare) / median:>7.2f}x"
        )


def measure(
    settings: Settings, http: httpx.Client, size: int, repeat: int
) -> tuple[list[float], list[float]]:
    pb = PocketBase.from_settings(settings)
    user = pb.create(
        "users", {"email": "t@b.test", "password": PASSWORD, "passwordConfirm": PASSWORD}
    )
    box = KeyBox(settings.encryption_key)
    store_keys(pb, box, user["id"], fathom=FATHOM_KEY, loom=LOOM_KEY)
    providers = Providers.from_settings(settings, redis.Redis.from_url(settings.redis_url))
    ports = TransferPorts(QueueStore(pb), KeyStore(pb, box), providers, settings)
    fathom = FathomClient(
        FATHOM_KEY, http=http, storage_http=http, base_url=settings.fathom_base_url
    )
    fathom.poll_initial = 0.05
    loom = LoomClient(LOOM_KEY, http=http, base_url=str(settings.loom_base_url))
    ours, bare = [], []
    for n in range(repeat):
        ours.append(transfer(pb, ports, user["id"], FIRST_RECORDING_ID + 2 * n))
        bare.append(
            bare_copy(fathom, loom, FIRST_RECORDING_ID + 2 * n + 1, settings.loom_chunk_bytes)
        )
    return ours, bare


if __name__ == "__main__":
    main()

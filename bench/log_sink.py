"""Records per second into `logs`: through the sink (Redis buffer + bulk flush) against one
PocketBase request per record, measured in the same run against real servers the bench starts.

Three ways through the sink:
- the caller's cost: how long the log calls themselves take;
- end to end, one process: the log calls, then the flush, one after the other (the worst case:
  nothing overlaps);
- end to end, as deployed: the log calls in this process while the flusher runs in its own
  process (as the flush task does in a worker), flushing back to back; from the first call
  until the last record is a row of `logs`.

    .venv/bin/python bench/log_sink.py [--records 20000 --baseline-records 1000]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import local_stack, stack_env
from fathom2loom.logsink.buffer import LogBuffer
from fathom2loom.logsink.flush import BATCH_RECORDS, flush_logs
from fathom2loom.logsink.handler import RedisLogHandler
from fathom2loom.logsink.records import to_row
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.settings import Settings, load_settings

FLUSHER = "--flusher"


def run_flusher() -> None:
    """The flusher's process: drain the buffer back to back until terminated."""
    settings = load_settings(_env_file=None)
    pb = PocketBase.from_settings(settings)
    buffer = LogBuffer(redis.Redis.from_url(settings.redis_url))
    while True:
        report = flush_logs(pb, buffer, batch_size=BATCH_RECORDS, max_seconds=600)
        if report is None or report.written == 0:
            time.sleep(0.01)


def stored(pb: PocketBase) -> int:
    body = pb.request("GET", "/api/collections/logs/records", params={"perPage": 1, "fields": "id"})
    return int(body["totalItems"])


def log_burst(logger: logging.Logger, records: int, offset: int) -> float:
    started = time.perf_counter()
    for n in range(offset, offset + records):
        logger.info("transfer %d moved %d bytes", n, n * 1000, extra={"row_id": f"r{n}"})
    return time.perf_counter() - started


def one_process(
    settings: Settings, pb: PocketBase, logger: logging.Logger, records: int
) -> tuple[float, float]:
    """(caller's seconds, end-to-end seconds) with the flush after the calls."""
    handler = logger.handlers[0]
    emitted = log_burst(logger, records, 0)
    started = time.perf_counter()
    handler.flush()  # Whatever the pusher thread has not pushed yet
    buffer = LogBuffer(redis.Redis.from_url(settings.redis_url))
    while buffer.size():
        flush_logs(pb, buffer, batch_size=BATCH_RECORDS, max_seconds=600)
    return emitted, emitted + time.perf_counter() - started


def as_deployed(settings: Settings, pb: PocketBase, logger: logging.Logger, records: int) -> float:
    """End-to-end seconds with the flusher in its own process."""
    env = stack_env(settings, "http://127.0.0.1:9", "http://127.0.0.1:9")
    flusher = subprocess.Popen([sys.executable, __file__, FLUSHER], env=env)
    try:
        before = stored(pb)
        time.sleep(1.0)  # The flusher is up and idle
        started = time.perf_counter()
        log_burst(logger, records, before)
        logger.handlers[0].flush()
        while stored(pb) < before + records:
            time.sleep(0.01)
        return time.perf_counter() - started
    finally:
        flusher.terminate()
        flusher.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--baseline-records", type=int, default=1_000)
    args = parser.parse_args()
    with local_stack() as settings:
        pb = PocketBase.from_settings(settings)
        logger = logging.getLogger("tasks.bench")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(RedisLogHandler(settings.redis_url))

        caller, sequential = one_process(settings, pb, logger, args.records)
        deployed = as_deployed(settings, pb, logger, args.records)
        assert stored(pb) == 2 * args.records, "records went missing"

        record = logging.LogRecord("tasks.bench", logging.INFO, __file__, 1, "direct", (), None)
        started = time.perf_counter()
        for _ in range(args.baseline_records):
            row = to_row(record)
            pb.create("logs", {k: v for k, v in row.items() if k != "id"})
        direct = time.perf_counter() - started
    direct_rate = args.baseline_records / direct
    header = f"{'path':<44} {'records':>8} {'seconds':>8} {'records/s':>10}"
    print(header + f" {'µs/record':>10} {'vs direct':>10}")
    rows = [
        ("sink: caller's cost (log calls return)", args.records, caller),
        ("sink: end to end, one process", args.records, sequential),
        ("sink: end to end, as deployed", args.records, deployed),
        ("direct: one PocketBase request per record", args.baseline_records, direct),
    ]
    for label, count, seconds in rows:
        rate = count / seconds
        print(
            f"{label:<44} {count:>8} {seconds:>8.2f} {rate:>10.0f} {1e6 / rate:>10.1f}"
            f" {rate / direct_rate:>9.1f}x"
        )


if __name__ == "__main__":
    if sys.argv[1:] == [FLUSHER]:
        run_flusher()
    else:
        main()

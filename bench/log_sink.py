"""Records per second into `logs`: through the sink (Redis buffer + batched flush) against one
PocketBase request per record, measured in the same run against real servers the bench starts.

    .venv/bin/python bench/log_sink.py [--records 20000 --baseline-records 1000]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import local_stack
from fathom2loom.logsink.buffer import LogBuffer
from fathom2loom.logsink.flush import BATCH_RECORDS, flush_logs
from fathom2loom.logsink.handler import RedisLogHandler
from fathom2loom.logsink.records import to_row
from fathom2loom.pocketbase.client import PocketBase


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
        handler = RedisLogHandler(settings.redis_url)
        logger.addHandler(handler)

        started = time.perf_counter()
        for n in range(args.records):
            logger.info("transfer %d moved %d bytes", n, n * 1000, extra={"row_id": f"r{n}"})
        emitted = time.perf_counter() - started
        buffer = LogBuffer(redis.Redis.from_url(settings.redis_url))
        flush_started = time.perf_counter()
        handler.flush()  # Whatever the pusher thread has not pushed yet
        while buffer.size():
            flush_logs(pb, buffer, batch_size=BATCH_RECORDS, max_seconds=600)
        flushed = time.perf_counter() - flush_started
        stored = len(list(pb.list_all("logs", fields="id", per_page=1000)))
        assert stored == args.records, f"only {stored} of {args.records} records arrived"

        record = logging.LogRecord("tasks.bench", logging.INFO, __file__, 1, "direct", (), None)
        started = time.perf_counter()
        for _ in range(args.baseline_records):
            row = to_row(record)
            pb.create("logs", {k: v for k, v in row.items() if k != "id"})
        direct = time.perf_counter() - started
    sink_rate = args.records / (emitted + flushed)
    direct_rate = args.baseline_records / direct
    print(f"{'path':<40} {'records':>8} {'seconds':>8} {'records/s':>10} {'vs direct':>10}")
    rows = [
        ("sink: caller's cost (log call returns)", args.records, emitted),
        ("sink: end to end (log call → logs row)", args.records, emitted + flushed),
        ("direct: one PocketBase request/record", args.baseline_records, direct),
    ]
    for label, count, seconds in rows:
        rate = count / seconds
        print(f"{label:<40} {count:>8} {seconds:>8.2f} {rate:>10.0f} {rate / direct_rate:>9.1f}x")
    print(f"end-to-end throughput vs direct: {sink_rate / direct_rate:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()

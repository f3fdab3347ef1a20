"""The logging handler every process installs: it never waits on PocketBase, nor on Redis.

`emit` turns the record into a redacted `logs` row and queues it in memory; a background thread
pushes whatever is queued to Redis in one call. The caller pays for building the row only. If
Redis is unreachable the rows wait in the bounded in-process queue and go out when it is back.
`flush()` (run by `logging.shutdown` at exit, and by `close`) pushes what is queued before
returning; only a process killed outright can lose the rows of its last instant.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import Any

import redis

from fathom2loom.logsink.buffer import LogBuffer
from fathom2loom.logsink.records import to_row

__all__ = ["RedisLogHandler", "ServiceFilter", "install_log_sink"]

OWN_LOGGERS = ("fathom2loom", "tasks", "__main__")
PUSH_BATCH = 500


class ServiceFilter(logging.Filter):
    """Our loggers from INFO up; everybody else's (Celery, kombu, httpx...) from WARNING up.

    httpx logs every request line at INFO, signed URLs included: those stay out.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(OWN_LOGGERS):
            return record.levelno >= logging.INFO
        return record.levelno >= logging.WARNING


class RedisLogHandler(logging.Handler):
    def __init__(self, redis_url: str, *, max_records: int = 200_000, backlog: int = 50_000):
        super().__init__(logging.INFO)
        self.addFilter(ServiceFilter())
        self._url = redis_url
        self._max_records = max_records
        self._queue: deque[dict[str, Any]] = deque(maxlen=backlog)
        self._wake = threading.Event()
        self._push_lock = threading.Lock()
        self._buffer: LogBuffer | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _for_this_process(self) -> LogBuffer:
        """Sockets, thread and queue are per process: a forked child starts afresh."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._queue.clear()  # What the parent queued is the parent's to push.
            client = redis.Redis.from_url(self._url, socket_timeout=2, socket_connect_timeout=2)
            self._buffer = LogBuffer(client, self._max_records)
            self._thread = threading.Thread(target=self._pusher, name="log sink", daemon=True)
            self._thread.start()
        assert self._buffer is not None
        return self._buffer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._for_this_process()
            self._queue.append(to_row(record))
            self._wake.set()
        except Exception:
            self.handleError(record)

    def _pusher(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if not self._push_queued():
                self._wake.wait(0.5)  # Redis is away: try again shortly.
                self._wake.set()

    def _push_queued(self) -> bool:
        """Push everything queued; False if Redis refused (the rows stay queued)."""
        with self._push_lock:
            while self._queue:
                rows = [self._queue.popleft() for _ in range(min(PUSH_BATCH, len(self._queue)))]
                try:
                    assert self._buffer is not None
                    self._buffer.push(*rows)
                except redis.RedisError:
                    self._queue.extendleft(reversed(rows))
                    return False
        return True

    def flush(self) -> None:
        # Always through the push lock: the pusher may hold rows it took from the queue.
        if self._pid == os.getpid():
            self._push_queued()

    def close(self) -> None:
        self.flush()
        super().close()


def install_log_sink(
    redis_url: str, max_records: int, root: logging.Logger | None = None
) -> RedisLogHandler:
    """Attach the sink to the root logger once; our own loggers log from INFO up."""
    root = root or logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, RedisLogHandler):
            return handler
    handler = RedisLogHandler(redis_url, max_records=max_records)
    root.addHandler(handler)
    for name in ("fathom2loom", "tasks"):
        logging.getLogger(name).setLevel(logging.INFO)
    return handler

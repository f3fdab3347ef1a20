"""The logging handler every process installs: it never waits on PocketBase, nor on Redis.

`emit` takes what only the calling moment knows (the formatted message, the secrets in scope, the
row and task being worked on) and queues it in memory; a background thread builds the redacted
`logs` rows and pushes whatever is queued to Redis in one call. The caller pays for the capture
only, a few microseconds. If
Redis is unreachable the rows wait in the bounded in-process queue and go out when it is back.

Pushed rows are kept here too until the buffer says PocketBase has them (its `durable` mark); if
Redis comes back empty (its `epoch` changed) they are pushed again, so a Redis restart loses no
record. `flush()` (run by `logging.shutdown` at exit, and by `close`) pushes what is queued before
returning; only a process killed outright can lose the rows of its last instant.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque

import redis

from fathom2loom.logsink.buffer import LogBuffer, encode
from fathom2loom.logsink.records import Captured, capture, notice, to_row

__all__ = ["RedisLogHandler", "ServiceFilter"]

OWN_LOGGERS = ("fathom2loom", "tasks", "__main__")
PUSH_BATCH = 2000
CHECK_SECONDS = 1.0
NOT_PUSHED = 2**62  # the sequence number of a kept row whose push is not known to have landed


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
        self._queue: deque[Captured] = deque(maxlen=backlog)
        self._dropped = 0  # records the full queue pushed out since the last notice
        self._queue_lock = threading.Lock()  # the queue and its drop count change together
        # (sequence number, encoded row) of pushed rows PocketBase may not have yet.
        self._retained: deque[tuple[int, tuple[str, str]]] = deque(maxlen=backlog)
        self._epoch: str | None = None
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._push_lock = threading.Lock()
        self._buffer: LogBuffer | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _for_this_process(self) -> LogBuffer:
        """Sockets, thread and queues are per process: a forked child starts afresh."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._queue.clear()  # What the parent queued is the parent's to push.
            self._dropped = 0
            self._retained.clear()
            self._epoch = None
            client = redis.Redis.from_url(self._url, socket_timeout=2, socket_connect_timeout=2)
            self._buffer = LogBuffer(client, self._max_records)
            self._thread = threading.Thread(target=self._pusher, name="log sink", daemon=True)
            self._thread.start()
        assert self._buffer is not None
        return self._buffer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._pid != os.getpid():
                self._for_this_process()
            captured = capture(record)
            with self._queue_lock:
                if len(self._queue) == self._queue.maxlen:
                    self._dropped += 1  # The append pushes the oldest out: said in a record.
                self._queue.append(captured)
            if not self._wake.is_set():
                self._wake.set()
        except Exception:
            self.handleError(record)

    def _pusher(self) -> None:
        checked = 0.0
        while not self._stopped.is_set():
            self._wake.wait(CHECK_SECONDS)
            self._wake.clear()
            ok = self._push_queued()
            if ok and time.monotonic() - checked >= CHECK_SECONDS:
                checked = time.monotonic()
                ok = self._check_retained()
            if not ok:
                self._wake.wait(0.5)  # Redis is away: try again shortly.
                self._wake.set()

    def _send(self, items: list[tuple[str, str]]) -> None:
        """Push encoded rows and keep them until PocketBase has them. Holds the push lock."""
        assert self._buffer is not None
        result = self._buffer.push_encoded(items, uuid.uuid4().hex)
        first = result.last_seq - len(items) + 1
        if self._epoch is not None and result.epoch != self._epoch:
            self._epoch = result.epoch
            self._resend_retained()  # Redis came back empty: what it held is gone.
        self._epoch = result.epoch
        self._retained.extend((first + n, item) for n, item in enumerate(items))

    def _resend_retained(self) -> None:
        lost = [item for _, item in self._retained]
        self._retained.clear()
        for start in range(0, len(lost), PUSH_BATCH):
            try:
                self._send(lost[start : start + PUSH_BATCH])
            except redis.RedisError:
                # Keep the rest, never taken for durable, and look again at the next check.
                self._retained.extend((NOT_PUSHED, item) for item in lost[start:])
                self._epoch = ""
                raise

    def _push_queued(self) -> bool:
        """Push everything queued; False if Redis refused (the rows stay queued)."""
        with self._push_lock:
            while self._queue or self._dropped:
                with self._queue_lock:
                    count = min(PUSH_BATCH, len(self._queue))
                    taken = [self._queue.popleft() for _ in range(count)]
                    dropped, self._dropped = self._dropped, 0
                rows = [encode(to_row(item)) for item in taken]
                if dropped:
                    rows.append(encode(_dropped_notice(dropped)))
                try:
                    self._send(rows)
                except redis.RedisError:
                    with self._queue_lock:  # Back in front; what no longer fits is counted.
                        overflow = len(self._queue) + len(taken) - (self._queue.maxlen or 0)
                        self._queue.extendleft(reversed(taken))
                        self._dropped += dropped + max(0, overflow)
                    return False
        return True

    def _check_retained(self) -> bool:
        """Forget what PocketBase has; push again what a Redis restart lost. False if away."""
        with self._push_lock:
            if not self._retained or self._buffer is None:
                return True
            try:
                epoch, durable = self._buffer.watermark()
                if epoch != self._epoch:
                    self._resend_retained()
                    return True
            except redis.RedisError:
                return False
            while self._retained and self._retained[0][0] <= durable:
                self._retained.popleft()
        return True

    def flush(self) -> None:
        # Always through the push lock: the pusher may hold rows it took from the queue.
        if self._pid == os.getpid():
            self._push_queued()

    def close(self) -> None:
        """Push what is queued and stop: a closed handler keeps and re-sends nothing."""
        self.flush()
        self._stopped.set()
        self._wake.set()
        super().close()


def _dropped_notice(dropped: int) -> dict[str, object]:
    return notice(
        "warn",
        f"log handler queue full (Redis away): dropped {dropped} records of process {os.getpid()}",
        {"dropped": dropped, "pid": os.getpid()},
    )

"""The logging handler every process installs: one Redis call per record, never PocketBase.

If Redis itself is unreachable, records wait in a bounded in-process queue and go out with the
next record that gets through; the process never blocks for long (short socket timeouts) and
logging never raises into the caller.
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

__all__ = ["RedisLogHandler", "ServiceFilter"]

OWN_LOGGERS = ("fathom2loom", "tasks", "__main__")


class ServiceFilter(logging.Filter):
    """Our loggers from INFO up; everybody else's (Celery, kombu, httpx...) from WARNING up.

    httpx logs every request line at INFO, signed URLs included: those stay out.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(OWN_LOGGERS):
            return record.levelno >= logging.INFO
        return record.levelno >= logging.WARNING


class RedisLogHandler(logging.Handler):
    def __init__(self, redis_url: str, *, max_records: int = 200_000, backlog: int = 10_000):
        super().__init__(logging.INFO)
        self.addFilter(ServiceFilter())
        self._url = redis_url
        self._max_records = max_records
        self._pending: deque[dict[str, Any]] = deque(maxlen=backlog)
        self._buffer: LogBuffer | None = None
        self._pid = 0
        self._guard = threading.local()

    def _get_buffer(self) -> LogBuffer:
        if self._buffer is None or self._pid != os.getpid():  # Never reuse a parent's socket.
            client = redis.Redis.from_url(self._url, socket_timeout=1.0, socket_connect_timeout=1.0)
            self._buffer, self._pid = LogBuffer(client, self._max_records), os.getpid()
        return self._buffer

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._guard, "active", False):
            return  # A log written while we log (e.g. by redis-py) must not loop.
        self._guard.active = True
        try:
            self._pending.append(to_row(record))
            buffer = self._get_buffer()
            while self._pending:
                buffer.push(self._pending[0])
                self._pending.popleft()
        except redis.RedisError:
            pass  # Kept in `_pending`; the next record retries.
        except Exception:
            self.handleError(record)
        finally:
            self._guard.active = False

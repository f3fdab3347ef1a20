"""The log sink's Celery side: the flush task beat runs, and the handler every process installs.

The handler (`fathom2loom.logsink.handler`) is attached to the root logger of workers, beat and
the CLI; the flush task drains the Redis buffer into PocketBase's `logs` in batches
(`fathom2loom.logsink.flush`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from celery.signals import after_setup_logger

from fathom2loom.logsink.buffer import LogBuffer
from fathom2loom.logsink.flush import flush_logs
from fathom2loom.logsink.handler import RedisLogHandler
from fathom2loom.settings import Settings, get_settings
from tasks.celery_app import app
from tasks.context import get_context

__all__ = ["flush_log_buffer", "install_log_sink"]


def install_log_sink(settings: Settings, root: logging.Logger | None = None) -> RedisLogHandler:
    """Attach the sink to the root logger once; our own loggers log from INFO up."""
    root = root or logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, RedisLogHandler):
            return handler
    handler = RedisLogHandler(settings.redis_url, max_records=settings.log_buffer_max_records)
    root.addHandler(handler)
    for name in ("fathom2loom", "tasks"):
        logging.getLogger(name).setLevel(logging.INFO)
    return handler


@after_setup_logger.connect
def _install(logger: logging.Logger, **_: Any) -> None:
    install_log_sink(get_settings(), logger)


@app.task(name="fathom2loom.flush_logs", ignore_result=True)
def flush_log_buffer() -> dict[str, Any] | None:
    """Beat's tick: move buffered log records into `logs`."""
    ctx = get_context()
    buffer = LogBuffer(ctx.redis, ctx.settings.log_buffer_max_records)
    report = flush_logs(ctx.pb, buffer, batch_size=ctx.pb.batch_size)
    return None if report is None else asdict(report)

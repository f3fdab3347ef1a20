"""The log sink's Celery side: logging for workers and beat, the task context on every record,
and the flush task.

Workers and beat log as every process does (`fathom2loom.logging_setup`, one dictConfig: a
console that masks secrets, and the sink). The flush task drains the Redis buffer into
PocketBase's `logs` in batches (`fathom2loom.logsink.flush`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import Task
from celery.signals import setup_logging, task_postrun, task_prerun

from fathom2loom.logging_setup import configure_logging
from fathom2loom.logsink.buffer import LogBuffer
from fathom2loom.logsink.context import enter, leave
from fathom2loom.logsink.flush import BATCH_RECORDS, flush_logs
from fathom2loom.settings import get_settings
from tasks.celery_app import app
from tasks.context import get_context
from tasks.outages import rides_out_outages

__all__ = ["flush_log_buffer"]


@setup_logging.connect
def _configure(loglevel: int | str | None = None, **_: Any) -> None:
    """Logging as every process has it (`fathom2loom.logging_setup`): Celery leaves it to us."""
    configure_logging(get_settings(), console_level=loglevel or "INFO")


_contexts: dict[str, Any] = {}


@task_prerun.connect
def _bind_task(task_id: str, task: Task[Any, Any], **_: Any) -> None:
    """Every record logged while a task runs names the task (by signal, not in task bodies)."""
    _contexts[task_id] = enter(task_id=task_id, task=task.name)


@task_postrun.connect
def _unbind_task(task_id: str, **_: Any) -> None:
    token = _contexts.pop(task_id, None)
    if token is not None:
        leave(token)


@app.task(name="fathom2loom.flush_logs", ignore_result=True)
@rides_out_outages
def flush_log_buffer() -> dict[str, Any] | None:
    """Beat's tick: move buffered log records into `logs`."""
    ctx = get_context()
    buffer = LogBuffer(ctx.redis, ctx.settings.log_buffer_max_records)
    report = flush_logs(ctx.pb, buffer, batch_size=BATCH_RECORDS)
    return None if report is None else asdict(report)

"""The dispatcher's beat task: one sync of the queue (`fathom2loom.dispatcher.sync_once`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fathom2loom.dispatcher import SyncReport, sync_once
from tasks.celery_app import app
from tasks.context import WorkerContext, get_context
from tasks.outages import rides_out_outages
from tasks.transfer import transfer

__all__ = ["send_transfer", "sync_now", "sync_queue"]


def send_transfer(row_id: str) -> None:
    transfer.apply_async(args=(row_id,))


def sync_now(ctx: WorkerContext) -> SyncReport | None:
    return sync_once(ctx.pb, ctx.redis, ctx.settings, send_transfer)


@app.task(name="fathom2loom.sync_queue", ignore_result=True)
@rides_out_outages
def sync_queue() -> dict[str, Any] | None:
    """Beat's tick: one sync of the queue."""
    report = sync_now(get_context())
    return None if report is None else asdict(report)

"""The Celery side of auto-move (`fathom2loom.auto_move`), on the dispatch queue:

- `fathom2loom.auto_move_webhooks` keeps each opted-in user's Fathom webhook as it should be:
  beat runs it every AUTO_MOVE_RECONCILE_SECONDS, and the wake-up sends it at once when a user
  changes `user_meta` or their keys (`tasks.realtime_wakeup`), and after the key check;
- `fathom2loom.auto_move_catch_up` lists each opted-in user's new meetings every
  AUTO_MOVE_POLL_SECONDS and queues what no webhook brought.
Neither overlaps with itself (`tasks.exclusive`). Results are counts, never keys or URLs.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fathom2loom.api_keys import KeyStore
from fathom2loom.auto_move.catch_up import catch_up
from fathom2loom.auto_move.registration import reconcile_webhooks
from fathom2loom.auto_move.store import AutoMoveStore
from tasks.celery_app import app
from tasks.context import WorkerContext, get_context
from tasks.exclusive import run_exclusively
from tasks.outages import rides_out_outages

__all__ = ["catch_up_meetings", "keep_webhooks"]


def _parts(ctx: WorkerContext) -> tuple[AutoMoveStore, KeyStore]:
    box = ctx.key_box()
    return AutoMoveStore(ctx.pb, box), KeyStore(ctx.pb, box)


@app.task(name="fathom2loom.auto_move_webhooks", ignore_result=True)
@rides_out_outages
def keep_webhooks() -> dict[str, int] | None:
    ctx = get_context()
    store, keys = _parts(ctx)
    report = run_exclusively(
        ctx.redis,
        "auto-move:webhooks",
        lambda: reconcile_webhooks(store, keys, ctx.providers, ctx.settings),
    )
    return None if report is None else asdict(report)


@app.task(name="fathom2loom.auto_move_catch_up", ignore_result=True)
@rides_out_outages
def catch_up_meetings() -> dict[str, Any] | None:
    ctx = get_context()
    store, keys = _parts(ctx)
    report = run_exclusively(
        ctx.redis,
        "auto-move:catch-up",
        lambda: catch_up(store, keys, ctx.providers, ctx.settings),
        lock_seconds=60,
    )
    if report is None:
        return None
    return {"queued": len(report.queued), "users": report.users, "deferred": report.deferred}

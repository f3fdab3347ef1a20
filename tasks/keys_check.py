"""The Celery side of the key check (`fathom2loom.key_check`): a task on the dispatch queue that
beat runs every minute and sends at once when a user saves a key (`tasks.realtime_wakeup`).
Checks never overlap; one asked for while one runs makes it run once more."""

from __future__ import annotations

import redis

from fathom2loom.key_check import check_keys
from tasks.celery_app import app
from tasks.context import get_context
from tasks.exclusive import run_exclusively
from tasks.outages import rides_out_outages

__all__ = ["check_saved_keys"]


@app.task(name="fathom2loom.check_keys", ignore_result=True)
@rides_out_outages
def check_saved_keys() -> int:
    ctx = get_context()
    box = ctx.key_box()
    try:
        checked = run_exclusively(
            ctx.redis, "keys:check", lambda: check_keys(ctx.pb, box, ctx.providers)
        )
    except redis.RedisError:
        return 0
    return checked or 0

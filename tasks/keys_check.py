"""The Celery side of the key check (`fathom2loom.key_check`): a task on the dispatch queue that
beat runs every minute and sends at once when a user saves a key (`tasks.realtime_wakeup`).
Checks never overlap; one asked for while one runs makes it run once more."""

from __future__ import annotations

import redis

from fathom2loom.key_check import check_keys
from fathom2loom.lease import Lease
from tasks.celery_app import app
from tasks.context import get_context

__all__ = ["check_saved_keys"]

LOCK_KEY, AGAIN_KEY = "f2l:keys:check-lock", "f2l:keys:check-again"
LOCK_SECONDS = 30


@app.task(name="fathom2loom.check_keys", ignore_result=True)
def check_saved_keys() -> int:
    ctx = get_context()
    lock = Lease.take(ctx.redis, LOCK_KEY, LOCK_SECONDS)
    if lock is None:
        ctx.redis.set(AGAIN_KEY, 1, ex=LOCK_SECONDS * 4)
        return 0
    lock.keep_alive()
    checked = 0
    try:
        box = ctx.key_box()
        while True:
            ctx.redis.delete(AGAIN_KEY)
            checked += check_keys(ctx.pb, box, ctx.providers)
            if not ctx.redis.delete(AGAIN_KEY):
                return checked
    except redis.RedisError:
        return checked
    finally:
        lock.release()

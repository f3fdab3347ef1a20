"""The Celery task that runs one queue row's transfer: glue around `fathom2loom.transfer`.

The rules are in the library; this task only holds what Celery and Redis add. It takes the row's
lease (one run per row at a time) and keeps the row's in-flight marker alive while it runs, so the
dispatcher knows the row has a live worker; both run out within `TRANSFER_LEASE_SECONDS` if the
worker dies, and the dispatcher sends the row again. When the run ends (done, or a wait recorded
on the row) it releases both and asks for a sync, so the freed slot gets the next row at once and
the waiting row goes again when due. A worker told to stop makes the run hand its row back at the
next chunk (`tasks.lifecycle`). Only the row id travels in the message; keys are read and
decrypted in the run, in memory.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from fathom2loom.errors import PocketBaseUnavailable
from fathom2loom.inflight import InFlight
from fathom2loom.lease import Lease
from fathom2loom.logsink.context import log_context
from fathom2loom.transfer import Done, RunControl, Step, Wait, run_transfer
from fathom2loom.wakeups import request_sync
from tasks.celery_app import app
from tasks.context import get_context
from tasks.lifecycle import shutting_down

__all__ = ["transfer"]

log = logging.getLogger(__name__)


EXCUSE_SECONDS = 7 * 86400  # long enough to outlast any outage the row waits through


def _excuse_key(row_id: str) -> str:
    """Set when PocketBase went down under a begun run; spent by the row's next run."""
    return f"f2l:transfer:excused:{row_id}"


@app.task(bind=True, name="fathom2loom.transfer", max_retries=0)
def transfer(self: Task[Any, Any], row_id: str) -> dict[str, Any]:
    """Move one queue row's recording as far as it goes now; safe to run twice."""
    ctx = get_context()
    seconds = ctx.settings.transfer_lease_seconds
    lease = Lease.acquire(ctx.redis, row_id, seconds)
    if lease is None:
        return {"row_id": row_id, "status": "busy"}  # Another run has it, and keeps it alive.
    markers = InFlight(ctx.redis)
    markers.hold(row_id, seconds)
    lease.keep_alive(on_renew=lambda: markers.hold(row_id, seconds))

    def excused() -> bool:
        with contextlib.suppress(redis.RedisError):
            return bool(ctx.redis.getdel(_excuse_key(row_id)))
        return False

    def stopped_by_outage() -> None:
        with contextlib.suppress(redis.RedisError):
            ctx.redis.set(_excuse_key(row_id), 1, ex=EXCUSE_SECONDS)

    def started() -> None:  # The rows behind it moved up: a sync says so, without a slot.
        with contextlib.suppress(redis.RedisError):
            request_sync(ctx.redis, 0.0, member=f"started:{row_id}")

    def progress(done: int, total: int) -> None:
        meta = {"row_id": row_id, "bytes_done": done, "bytes_total": total}
        self.update_state(state="PROGRESS", meta=meta)

    step: Step = Done("stopped")
    try:
        with log_context(row_id=row_id):
            control = RunControl(
                lease.lost.is_set,
                progress,
                shutting_down,
                excused,
                stopped_by_outage,
                started,
                time_limit=(SoftTimeLimitExceeded,),
            )
            step = run_transfer(row_id, ctx.transfer_ports(), control)
    except (PocketBaseUnavailable, redis.RedisError) as exc:  # The row is rescued when back.
        log.warning(
            "transfer %s: the run stopped, %s is away (%s); the row goes on when it is back",
            row_id,
            "PocketBase" if isinstance(exc, PocketBaseUnavailable) else "Redis",
            exc,
        )
    except Exception:
        log.exception("transfer %s: the run could not finish its bookkeeping", row_id)
    finally:
        lost = lease.lost.is_set()
        lease.release()
        with contextlib.suppress(redis.RedisError):
            if not lost:  # A lost lease may be someone else's now, and so may the marker.
                markers.release(row_id)
            request_sync(ctx.redis, step.seconds if isinstance(step, Wait) else 0.0, member=row_id)
    return step.result(row_id)

"""Housekeeping tasks that must not overlap: one runs, one asked for meanwhile runs once more.

A Redis lease (renewed while the work runs, so a killed worker holds it for seconds) guards the
work; a task that finds it taken leaves an "again" mark, and the holder runs the work once more
before it lets go. So a burst of requests costs at most two runs, and none is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

from fathom2loom.lease import Lease

__all__ = ["run_exclusively"]

T = TypeVar("T")


def run_exclusively(
    client: redis.Redis, name: str, work: Callable[[], T], *, lock_seconds: int = 30
) -> T | None:
    """`work()` under the `name` lease, again while asked for; None when another run has it."""
    lock_key, again_key = f"f2l:{name}:lock", f"f2l:{name}:again"
    lock = Lease.take(client, lock_key, lock_seconds)
    if lock is None:
        client.set(again_key, 1, ex=lock_seconds * 4)
        return None
    lock.keep_alive()
    try:
        while True:
            client.delete(again_key)
            result = work()
            if not client.delete(again_key):
                return result
    finally:
        lock.release()

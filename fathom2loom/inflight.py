"""In-flight markers: which queue rows have a live transfer task, kept in Redis.

The dispatcher claims a row's marker (`SET NX`) before it sends the row's task, so overlapping
syncs or two beats never send a row twice. The task keeps the marker alive while it lives: it
refreshes it with its lease while running, extends it across a countdown retry, and deletes it
when the row reaches a final status. A marker that runs out means the task is gone (its worker
died, Redis was flushed or restarted): the next sync sends the row again.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

__all__ = ["InFlight"]

PREFIX = "f2l:inflight:"


class InFlight:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def claim(self, row_id: str, seconds: float, owner: str = "dispatcher") -> bool:
        """Mark the row as having a task; False when it already has one."""
        return bool(self._redis.set(PREFIX + row_id, owner, nx=True, px=int(seconds * 1000)))

    def hold(self, row_id: str, seconds: float, owner: str = "task") -> None:
        """The task says it is alive for at least `seconds` more."""
        self._redis.set(PREFIX + row_id, owner, px=int(seconds * 1000))

    def release(self, row_id: str) -> None:
        self._redis.delete(PREFIX + row_id)

    def alive(self, row_ids: Sequence[str], chunk: int = 1000) -> set[str]:
        """The rows among `row_ids` that have a live marker (pipelined, any number of rows)."""
        found: set[str] = set()
        for start in range(0, len(row_ids), chunk):
            part = row_ids[start : start + chunk]
            values = self._redis.mget([PREFIX + r for r in part])
            found.update(r for r, v in zip(part, values, strict=True) if v is not None)
        return found

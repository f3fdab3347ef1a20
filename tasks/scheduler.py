"""celery-redbeat's scheduler, made to survive Redis losing its keys.

RedBeat keeps its schedule and its leader lock in Redis. After a flush or a restart without
persistence both are gone: the stock scheduler then fails to extend its lock and, with no
schedule left, would never tick again. This one takes the lock back when nobody else holds it
(standing by when another beat took over), and puts the static schedule back when it is missing.
"""

from __future__ import annotations

from typing import Any

from redbeat import RedBeatScheduler
from redbeat.schedulers import get_redis
from redis.exceptions import LockError

__all__ = ["HealingRedBeatScheduler"]


class HealingRedBeatScheduler(RedBeatScheduler):  # type: ignore[misc]
    def _keep_lock(self) -> bool:
        """True while this beat is the leader."""
        if not self.lock_key or self.lock is None:
            return True
        try:
            self.lock.extend(int(self.lock_timeout))
            return True
        except LockError:
            return bool(self.lock.acquire(blocking=False))

    def tick(self, min: Any = min, **kwargs: Any) -> float:
        if not self._keep_lock():
            return float(self.max_interval)  # Another beat leads; try again next time.
        if not get_redis(self.app).exists(self.app.redbeat_conf.schedule_key):
            self.setup_schedule()
        remaining = []
        try:
            for entry in self.schedule.values():
                next_time = self.maybe_due(entry, **self._maybe_due_kwargs)
                if next_time:
                    remaining.append(next_time)
        except RuntimeError:
            pass  # As RedBeat does: the schedule changed under us; next tick sees it.
        return float(min([*remaining, self.max_interval]))

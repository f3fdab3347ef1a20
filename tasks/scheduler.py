"""celery-redbeat's scheduler, made to survive Redis going away and coming back empty.

RedBeat keeps its schedule and its leader lock in Redis. The stock scheduler lets a Redis error
escape `tick()`, which ends the beat process; after a restart without persistence it fails to
extend a lock that is gone and, with no schedule left, would never tick again. This one:
- treats any Redis error in a tick as "try again in a moment" (the process stays up);
- takes the lock back when nobody holds it (standing by when another beat took over), also when
  beat started while Redis was down and never got it;
- puts the static schedule back when it is missing, and starts even while Redis is down;
- stops cleanly (SIGTERM) while Redis is down.
"""

from __future__ import annotations

import logging
from typing import Any

from redbeat import RedBeatScheduler
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, get_redis
from redis.exceptions import LockError, RedisError

__all__ = ["HealingRedBeatScheduler"]

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0


class HealingRedBeatScheduler(RedBeatScheduler):  # type: ignore[misc]
    def _new_lock(self) -> Any:
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        return lock

    def _keep_lock(self) -> bool:
        """True while this beat is the leader."""
        if not self.lock_key:
            return True
        lock: Any = getattr(self, "lock", None)
        if lock is None:  # Beat started while Redis was away: it never got the lock.
            lock = self.lock = self._new_lock()
            return bool(lock.acquire(blocking=False))
        try:
            lock.extend(int(self.lock_timeout))
            return True
        except LockError:
            return bool(lock.acquire(blocking=False))

    def tick(self, min: Any = min, **kwargs: Any) -> float:
        try:
            return self._tick(min)
        except RedisError as exc:
            log.warning("beat: Redis unreachable (%s); trying again shortly", type(exc).__name__)
            return RETRY_SECONDS

    def _tick(self, min: Any) -> float:
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

    def setup_schedule(self) -> None:
        try:  # Runs in __init__: Redis being away at start would end beat; a tick installs it.
            super().setup_schedule()
        except RedisError as exc:
            log.warning(
                "beat: Redis unreachable (%s); schedule installed later", type(exc).__name__
            )

    def close(self) -> None:
        try:  # RedBeat's close asks Redis whether the lock is still ours.
            super().close()
        except RedisError:
            self.lock = None

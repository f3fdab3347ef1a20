"""Which transfer workers are alive, and how many slots they have, kept in Redis.

Each worker process that consumes transfers says every few seconds "I am here with N slots"
(`WorkerPresence`); the entry runs out when it stops saying so (killed, Redis restarted empty:
it says so again within one beat). The dispatcher sends no more tasks than the live slots, so
tasks do not pile up in the broker behind one user's backlog, and fairness decides who gets a
freed slot, not the broker's queue order.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import redis

__all__ = ["KEY", "WorkerPresence", "worker_slots"]

log = logging.getLogger(__name__)
KEY = "f2l:workers"

# ARGV: member, ttl seconds. Score = expiry on Redis's clock.
_ANNOUNCE = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(ARGV[2]), ARGV[1])
return 1
"""
_SLOTS = """
local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def worker_slots(client: redis.Redis) -> int | None:
    """The live transfer workers' slots in all; None when no worker has said it is alive."""
    members = client.eval(_SLOTS, 1, KEY)
    if not members:
        return None
    return sum(int(m.rsplit(b"|", 1)[1]) for m in members)


class WorkerPresence:
    """Announces one worker's slots every `ttl / 3` seconds from a daemon thread."""

    def __init__(self, client: redis.Redis, name: str, slots: int, ttl: float = 15.0) -> None:
        self._redis = client
        self.member = f"{name}|{slots}"
        self.ttl = ttl
        self._stop = threading.Event()

    def announce(self) -> None:
        self._redis.eval(_ANNOUNCE, 1, KEY, self.member, int(self.ttl))

    def start(self) -> WorkerPresence:
        def loop() -> None:
            while True:
                try:
                    self.announce()
                except redis.RedisError as exc:
                    log.debug("worker presence: Redis unreachable (%s)", type(exc).__name__)
                if self._stop.wait(self.ttl / 3):
                    return

        threading.Thread(target=loop, name="worker presence", daemon=True).start()
        return self

    def stop(self) -> None:
        """Leave at once (a graceful shutdown), rather than when the entry runs out."""
        self._stop.set()
        with contextlib.suppress(redis.RedisError):  # Otherwise it runs out by itself.
            self._redis.zrem(KEY, self.member)

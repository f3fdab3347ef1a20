"""A lease on a queue row in Redis: at most one worker works on a row at a time.

Celery on Redis delivers at least once, so a row's task may run twice at the same moment (a
visibility-timeout redelivery, a requeue after a lost connection). The copy that does not hold the
lease backs off. The holder renews it from a background thread while it works; if the holder dies,
the lease expires and the row can be taken over. Renewal and release check a random token, so a
worker never extends or frees a lease it lost.

A holder that cannot renew (the key is gone after Redis restarted empty, or Redis has been
unreachable for two thirds of the lease) marks the lease `lost` before it can run out, so it stops
working on the row before anyone else may start.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable

import redis

__all__ = ["Lease", "release_if_held"]

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def release_if_held(client: redis.Redis, key: str, token: str) -> bool:
    """Delete `key` only if it still holds `token`, in one step: never someone else's lock."""
    return bool(client.eval(_RELEASE, 1, key, token))


class Lease:
    """A held lease; use `Lease.acquire`, then `keep_alive()` and `release()`."""

    def __init__(self, client: redis.Redis, key: str, token: str, seconds: float) -> None:
        self._redis = client
        self.key = key
        self._token = token
        self.seconds = seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> str:
        """The holder's proof, for scripts that act only while the lease is theirs."""
        return self._token

    @staticmethod
    def key_for(row_id: str) -> str:
        return f"f2l:lease:queue:{row_id}"

    @classmethod
    def take(cls, client: redis.Redis, key: str, seconds: float) -> Lease | None:
        """Hold `key` for `seconds`, or None when someone else holds it."""
        token = uuid.uuid4().hex
        if client.set(key, token, nx=True, px=int(seconds * 1000)):
            return cls(client, key, token, seconds)
        return None

    @classmethod
    def acquire(cls, client: redis.Redis, row_id: str, seconds: float) -> Lease | None:
        """Take the row's lease, or None when another worker holds it."""
        return cls.take(client, cls.key_for(row_id), seconds)

    @staticmethod
    def remaining(client: redis.Redis, row_id: str) -> float:
        """Seconds until another worker's lease on the row runs out (0 when free)."""
        ttl = int(client.pttl(Lease.key_for(row_id)))
        return max(ttl, 0) / 1000.0

    def renew(self) -> bool:
        ok = bool(self._redis.eval(_RENEW, 1, self.key, self._token, int(self.seconds * 1000)))
        if not ok:
            self.lost.set()
        return ok

    def keep_alive(self, on_renew: Callable[[], None] | None = None) -> None:
        """Renew every sixth of the lease in a daemon thread until released or lost."""

        def loop() -> None:
            renewed = time.monotonic()
            while not self._stop.wait(self.seconds / 6):
                try:
                    if not self.renew():
                        return
                    renewed = time.monotonic()
                    if on_renew is not None:
                        on_renew()
                except redis.RedisError:
                    # A short blip is outlived; past two thirds of the lease, give the row up.
                    if time.monotonic() - renewed > self.seconds * 2 / 3:
                        self.lost.set()
                        return

        self._thread = threading.Thread(target=loop, name=f"lease {self.key}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with contextlib.suppress(redis.RedisError):  # Unreleased, it expires on its own.
            release_if_held(self._redis, self.key, self._token)

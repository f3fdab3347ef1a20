"""Per-API-key rate limits shared by every process, kept in Redis.

Fathom allows 60 calls per 60 s per account, with tighter budgets for some calls. Several worker
processes may use one user's key at once, so the count must live where they all see it: a sliding
window per (key, budget) in a Redis sorted set, checked and taken in one Lua script with Redis's
own clock. Keys are named by an HMAC under a server secret, never stored. A 429 from the
provider sets a cooldown that every process honours.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from fathom2loom.errors import CoordinationUnavailable, RateLimited, TemporaryFault
from fathom2loom.keybox import fingerprint

__all__ = ["Budget", "RateLimiter", "key_identity"]

# KEYS: cooldown key, then one sorted set per budget. ARGV: member, then (limit, window ms) pairs.
# Returns 0 when a call was taken from every budget, else the milliseconds to wait.
_TAKE = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local cooldown = redis.call('PTTL', KEYS[1])
if cooldown > 0 then return cooldown end
local wait = 0
for i = 2, #KEYS do
  local limit = tonumber(ARGV[(i - 2) * 2 + 2])
  local window = tonumber(ARGV[(i - 2) * 2 + 3])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local until_free = tonumber(oldest[2]) + window - now + 1
    if until_free > wait then wait = until_free end
  end
end
if wait > 0 then return wait end
for i = 2, #KEYS do
  local window = tonumber(ARGV[(i - 2) * 2 + 3])
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], window)
end
return 0
"""


@dataclass(frozen=True)
class Budget:
    """At most `calls` calls in any `per_seconds` window."""

    name: str
    calls: int
    per_seconds: float


_PROCESS_SECRET = os.urandom(32)


def key_identity(api_key: str, secret: bytes | None = None) -> str:
    """A stable, non-reversible name for an API key, safe to use in Redis keys and logs.

    An HMAC under `secret` (`Providers` passes one derived from PB_ENCRYPTION_KEY, the same in
    every process, so budgets are shared); without one, under this process's own random secret
    (then the budgets are this process's alone)."""
    return fingerprint(secret or _PROCESS_SECRET, api_key)


class RateLimiter:
    def __init__(self, client: redis.Redis, *, prefix: str = "f2l:ratelimit") -> None:
        self._redis = client
        self._prefix = prefix
        self._take = client.register_script(_TAKE)

    def try_take(self, identity: str, budgets: Sequence[Budget]) -> float:
        """Take one call from every budget, or none: 0.0 when taken, else seconds to wait."""
        keys = [f"{self._prefix}:{identity}:cooldown"]
        keys += [f"{self._prefix}:{identity}:{b.name}" for b in budgets]
        args: list[str | int] = [uuid.uuid4().hex]
        for budget in budgets:
            args += [budget.calls, int(budget.per_seconds * 1000)]
        try:
            wait_ms = int(self._take(keys=keys, args=args))
        except redis.RedisError as exc:
            raise CoordinationUnavailable(
                "the shared rate budgets (Redis) are not answering"
            ) from exc
        return wait_ms / 1000.0

    def take(
        self, identity: str, budgets: Sequence[Budget], *, max_wait: float, provider: str
    ) -> None:
        """Take a call, sleeping while the wait is short; raise `RateLimited` when it is not."""
        deadline = time.monotonic() + max_wait
        while True:
            try:
                wait = self.try_take(identity, budgets)
            except CoordinationUnavailable as exc:  # The call waits, as for any passing fault.
                raise TemporaryFault(provider, f"{provider} calls wait: {exc}") from exc
            if wait == 0:
                return
            if time.monotonic() + wait > deadline:
                raise RateLimited(
                    provider,
                    f"{provider} rate limit reached",
                    retry_after=wait,
                )
            time.sleep(wait)

    def cool_down(self, identity: str, seconds: float) -> None:
        """After a 429, make every process wait `seconds` before using this key again."""
        if seconds > 0:
            try:
                self._redis.set(f"{self._prefix}:{identity}:cooldown", 1, px=int(seconds * 1000))
            except redis.RedisError as exc:
                raise CoordinationUnavailable(
                    "the shared rate budgets (Redis) are not answering"
                ) from exc

"""The records waiting for PocketBase, in Redis: two lists by severity, bounded, and the flusher's
processing list.

Pushing is one Lua call per burst of records: append, and past `max_records` drop the oldest
trace/debug/info records first (warnings and errors only when nothing else is left), counting
what was dropped. The
flusher moves records to a processing list under a lock token, and removes them only once
PocketBase has them; a flusher that died leaves them there for the next one.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from fathom2loom.lease import release_if_held

__all__ = ["LogBuffer"]

PREFIX = "f2l:logs:"
HIGH, LOW, PROCESSING = PREFIX + "high", PREFIX + "low", PREFIX + "processing"
DROPPED, LOCK = PREFIX + "dropped", PREFIX + "flush-lock"

_PUSH = """
local max = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('RPUSH', KEYS[ARGV[i + 1] == 'high' and 1 or 2], ARGV[i])
end
local low, high = redis.call('LLEN', KEYS[2]), redis.call('LLEN', KEYS[1])
local excess = low + high - max
if excess <= 0 then return 0 end
local from_low = math.min(excess, low)
if from_low > 0 then redis.call('LTRIM', KEYS[2], from_low, -1) end
local from_high = excess - from_low
if from_high > 0 then redis.call('LTRIM', KEYS[1], from_high, -1) end
redis.call('INCRBY', KEYS[3], excess)
return excess
"""
# KEYS: lock, high, low, processing. ARGV: token, n. Returns the records now in processing.
_TAKE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local n = tonumber(ARGV[2]) - redis.call('LLEN', KEYS[4])
for _, source in ipairs({KEYS[2], KEYS[3]}) do
  while n > 0 do
    if not redis.call('LMOVE', source, KEYS[4], 'LEFT', 'RIGHT') then break end
    n = n - 1
  end
end
return redis.call('LRANGE', KEYS[4], 0, -1)
"""
_ACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('LTRIM', KEYS[2], tonumber(ARGV[2]), -1)
return 1
"""


class LogBuffer:
    def __init__(self, client: redis.Redis, max_records: int = 200_000) -> None:
        self._redis = client
        self.max_records = max_records
        self._push = client.register_script(_PUSH)
        self._take = client.register_script(_TAKE)
        self._ack = client.register_script(_ACK)

    def push(self, *rows: dict[str, Any]) -> int:
        """Append records in one call; returns how many old records the ceiling dropped."""
        args: list[Any] = [self.max_records]
        for row in rows:
            severity = "high" if row["level"] in ("warn", "error", "fatal") else "low"
            args += [json.dumps(row, separators=(",", ":"), default=str), severity]
        return int(self._push(keys=[HIGH, LOW, DROPPED], args=args)) if rows else 0

    def size(self) -> int:
        with self._redis.pipeline() as pipe:
            for key in (HIGH, LOW, PROCESSING):
                pipe.llen(key)
            return sum(int(n) for n in pipe.execute())

    # -- the flusher's side ---------------------------------------------------------------

    def lock(self, token: str, seconds: float) -> bool:
        return bool(self._redis.set(LOCK, token, nx=True, px=int(seconds * 1000)))

    def unlock(self, token: str) -> None:
        release_if_held(self._redis, LOCK, token)

    def take(self, token: str, n: int) -> list[dict[str, Any]] | None:
        """Up to `n` records in processing (leftovers first); None if the lock was lost."""
        raw = self._take(keys=[LOCK, HIGH, LOW, PROCESSING], args=[token, n])
        if raw is None:
            return None
        return [json.loads(item) for item in raw]

    def ack(self, token: str, n: int) -> bool:
        """Forget the first `n` processing records: PocketBase has them."""
        return bool(self._ack(keys=[LOCK, PROCESSING], args=[token, n]))

    def pop_dropped(self) -> int:
        return int(self._redis.getdel(DROPPED) or 0)

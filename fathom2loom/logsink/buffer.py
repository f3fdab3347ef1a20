"""The records waiting for PocketBase, in Redis: two lists by severity, bounded, and the flusher's
processing list.

Pushing is one Lua call per burst of records: each record gets the next sequence number, is
appended, and past `max_records` the oldest trace/debug/info records are dropped first (warnings
and errors only when nothing else is left), counting what was dropped. The flusher moves records
to a processing list under a lock token, and removes them only once PocketBase has them; a
flusher that died leaves them there for the next one.

Redis is not the only copy of a record until PocketBase has it: after each flush the buffer
publishes `durable`, the sequence number up to which every record is in PocketBase (or was
dropped by the ceiling), and every push returns the buffer's `epoch`, a random name it got when
it was first used. A handler keeps its records until `durable` passes them; when Redis comes back
empty (a new epoch) it pushes them again. The records carry their own ids, so a record sent twice
is stored once.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from fathom2loom.lease import Lease

__all__ = ["LogBuffer", "PushResult", "encode"]

PREFIX = "f2l:logs:"
HIGH, LOW, PROCESSING = PREFIX + "high", PREFIX + "low", PREFIX + "processing"
DROPPED, LOCK = PREFIX + "dropped", PREFIX + "flush-lock"
SEQ, EPOCH, DURABLE = PREFIX + "seq", PREFIX + "epoch", PREFIX + "durable"

# KEYS: high, low, dropped, seq, epoch. ARGV: max, candidate epoch, then (record, severity) pairs.
# Returns {epoch, last sequence number, dropped}.
_PUSH = """
local max = tonumber(ARGV[1])
local epoch = redis.call('GET', KEYS[5])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[5], epoch)
end
local seq = 0
for i = 3, #ARGV, 2 do
  seq = redis.call('INCR', KEYS[4])
  redis.call('RPUSH', KEYS[ARGV[i + 1] == 'high' and 1 or 2], seq .. '|' .. ARGV[i])
end
local low, high = redis.call('LLEN', KEYS[2]), redis.call('LLEN', KEYS[1])
local excess = low + high - max
if excess > 0 then
  local from_low = math.min(excess, low)
  if from_low > 0 then redis.call('LTRIM', KEYS[2], from_low, -1) end
  local from_high = excess - from_low
  if from_high > 0 then redis.call('LTRIM', KEYS[1], from_high, -1) end
  redis.call('INCRBY', KEYS[3], excess)
else
  excess = 0
end
return {epoch, seq, excess}
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
# KEYS: lock, processing, high, low, seq, durable. ARGV: token, n.
# Trims what PocketBase has, then publishes the sequence number below every record still waiting.
_ACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('LTRIM', KEYS[2], tonumber(ARGV[2]), -1)
local durable = tonumber(redis.call('GET', KEYS[5]) or '0')
for i = 2, 4 do
  local head = redis.call('LINDEX', KEYS[i], 0)
  if head then
    local seq = tonumber(string.match(head, '^(%d+)|'))
    if seq and seq - 1 < durable then durable = seq - 1 end
  end
end
redis.call('SET', KEYS[6], durable)
return 1
"""


def encode(row: dict[str, Any]) -> tuple[str, str]:
    """A `logs` row as pushed: its JSON, and the list it goes to."""
    severity = "high" if row["level"] in ("warn", "error", "fatal") else "low"
    return json.dumps(row, separators=(",", ":"), default=str), severity


@dataclass(frozen=True)
class PushResult:
    epoch: str
    last_seq: int  # the pushed records got last_seq - n + 1 .. last_seq
    dropped: int


class LogBuffer:
    def __init__(self, client: redis.Redis, max_records: int = 200_000) -> None:
        self._redis = client
        self.max_records = max_records
        self._push = client.register_script(_PUSH)
        self._take = client.register_script(_TAKE)
        self._ack = client.register_script(_ACK)

    def push_encoded(self, items: list[tuple[str, str]], epoch: str) -> PushResult:
        """Append encoded records in one call; `epoch` names the buffer if it has no name yet."""
        args: list[Any] = [self.max_records, epoch]
        for item in items:
            args += item
        found, last, dropped = self._push(keys=[HIGH, LOW, DROPPED, SEQ, EPOCH], args=args)
        return PushResult(found.decode(), int(last), int(dropped))

    def push(self, *rows: dict[str, Any]) -> int:
        """Append records in one call; returns how many old records the ceiling dropped."""
        if not rows:
            return 0
        return self.push_encoded([encode(row) for row in rows], uuid.uuid4().hex).dropped

    def watermark(self) -> tuple[str | None, int]:
        """(epoch, durable): the buffer's name, and the last sequence number PocketBase has."""
        epoch, durable = self._redis.mget([EPOCH, DURABLE])
        name = epoch.decode() if isinstance(epoch, bytes) else epoch
        return name, int(durable or 0)

    def size(self) -> int:
        with self._redis.pipeline() as pipe:
            for key in (HIGH, LOW, PROCESSING):
                pipe.llen(key)
            return sum(int(n) for n in pipe.execute())

    # -- the flusher's side ---------------------------------------------------------------

    def lock(self, seconds: float) -> Lease | None:
        """The flusher's lock (its `token` goes to `take` and `ack`), or None when held."""
        return Lease.take(self._redis, LOCK, seconds)

    def take_raw(self, token: str, n: int) -> list[bytes] | None:
        """Up to `n` records in processing (leftovers first), as their JSON text; None if the
        lock was lost."""
        raw = self._take(keys=[LOCK, HIGH, LOW, PROCESSING], args=[token, n])
        if raw is None:
            return None
        return [item.split(b"|", 1)[1] for item in raw]

    def take(self, token: str, n: int) -> list[dict[str, Any]] | None:
        """The same, decoded."""
        raw = self.take_raw(token, n)
        return None if raw is None else [json.loads(item) for item in raw]

    def ack(self, token: str, n: int) -> bool:
        """Forget the first `n` processing records: PocketBase has them."""
        return bool(self._ack(keys=[LOCK, PROCESSING, HIGH, LOW, SEQ, DURABLE], args=[token, n]))

    def pop_dropped(self) -> int:
        return int(self._redis.getdel(DROPPED) or 0)

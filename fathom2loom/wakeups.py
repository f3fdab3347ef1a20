"""Asking for a sync, now or at a given moment, without waiting for beat's tick.

A transfer that finished, failed or must wait asks for a sync (`request_sync`) so a freed slot
gets the next row at once and a waiting row goes again as soon as its wait is over. Requests are
members of one Redis sorted set scored by when they are due, on Redis's clock (workers' clocks
may differ); beat's wake-up thread takes the due ones (`take_due`) and runs one sync for all of
them. A request lost with Redis only costs time: beat's tick and the rows themselves
(`next_attempt_at`) still say what is due.
"""

from __future__ import annotations

import redis

__all__ = ["KEY", "request_sync", "take_due"]

KEY = "f2l:sync:requests"

# ARGV: seconds from now, member. Keeps the earliest due time when the member is already there.
_REQUEST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return redis.call('ZADD', KEYS[1], 'LT', now + tonumber(ARGV[1]), ARGV[2])
"""
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""


def request_sync(client: redis.Redis, after: float = 0.0, *, member: str = "now") -> None:
    """Ask for a sync in `after` seconds; `member` names the request (one per row, say)."""
    client.eval(_REQUEST, 1, KEY, max(0.0, after), member)


def take_due(client: redis.Redis) -> int:
    """Remove and count the requests that are due; a sync should follow when there are any."""
    return int(client.eval(_TAKE, 1, KEY))

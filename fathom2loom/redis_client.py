"""The Redis client every long-running process uses."""

from __future__ import annotations

import redis

__all__ = ["redis_client"]


def redis_client(url: str) -> redis.Redis:
    """A client that never hangs on a dead connection: timeouts, and a check of idle sockets."""
    return redis.Redis.from_url(
        url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=15
    )

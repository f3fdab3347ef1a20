"""kombu's Redis transport, fixed so a worker survives Redis restarting while it holds messages.

After a lost connection Celery's consumer closes the broker connection twice: `collect()` detaches
the transport (its `client` becomes None) while the default channel is left half-closed, and the
second `close()` closes that channel again. With a late-acked message in hand (a task running),
the channel then tries to restore it and reads `self.connection.client.hostname`: an
`AttributeError` that `ignore_errors` does not swallow, so the worker stops as "Unrecoverable"
(kombu#582). Here that read raises a connection error instead, which Celery ignores as intended;
the dispatcher re-sends the row, so nothing is lost by not restoring the message.

Installed for `redis://` and `rediss://` URLs by `install()` (called by `tasks.celery_app`), so
URLs, logs and Flower still say `redis`.
"""

from __future__ import annotations

from typing import Any

from kombu import transport as kombu_transports
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = ["Channel", "Transport", "install"]


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection is already closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Resolve the `redis` and `rediss` transports to this one."""
    for alias in ("redis", "rediss"):
        kombu_transports.TRANSPORT_ALIASES[alias] = f"{__name__}:Transport"
        getattr(kombu_transports, "_transport_cache", {}).pop(alias, None)

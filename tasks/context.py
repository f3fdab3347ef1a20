"""What a task needs, made once per worker process and closed when the process ends.

Created lazily on first use and again after a fork (a prefork child must not reuse its parent's
sockets), released by `worker_process_shutdown`. The key box is made only when a transfer needs
it, so beat (which syncs in-process) runs without `PB_ENCRYPTION_KEY`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import redis
from celery.signals import worker_process_shutdown

from fathom2loom.api_keys import KeyStore
from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.providers.factory import Providers
from fathom2loom.queue_store import QueueStore
from fathom2loom.redis_client import redis_client
from fathom2loom.settings import Settings, get_settings
from fathom2loom.transfer import TransferPorts

__all__ = ["WorkerContext", "get_context", "redis_client"]


@dataclass
class WorkerContext:
    settings: Settings
    pb: PocketBase
    redis: redis.Redis
    providers: Providers
    pid: int
    _ports: TransferPorts | None = field(default=None, repr=False)

    @classmethod
    def create(cls, settings: Settings) -> WorkerContext:
        client = redis_client(settings.redis_url)
        return cls(
            settings=settings,
            pb=PocketBase.from_settings(settings),
            redis=client,
            providers=Providers.from_settings(settings, client),
            pid=os.getpid(),
        )

    def key_box(self) -> KeyBox:
        """The users' keys' cipher; needs `PB_ENCRYPTION_KEY` (a config error names it)."""
        return KeyBox(self.settings.encryption_key, self.settings.previous_encryption_keys)

    def transfer_ports(self) -> TransferPorts:
        """The transfer's dependencies."""
        if self._ports is None:
            self._ports = TransferPorts(
                rows=QueueStore(self.pb),
                keys=KeyStore(self.pb, self.key_box()),
                providers=self.providers,
                settings=self.settings,
            )
        return self._ports

    def close(self) -> None:
        self.providers.close()
        self.pb.close()
        self.redis.close()


_context: WorkerContext | None = None


def get_context() -> WorkerContext:
    global _context
    if _context is None or _context.pid != os.getpid():
        _context = WorkerContext.create(get_settings())
    return _context


@worker_process_shutdown.connect
def _close_context(**_: Any) -> None:
    global _context
    if _context is not None and _context.pid == os.getpid():
        _context.close()
        _context = None

"""What a task needs, made once per worker process and closed when the process ends.

Created lazily on first use and again after a fork (a prefork child must not reuse its parent's
sockets), released by `worker_process_shutdown`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import redis
from celery.signals import worker_process_shutdown

from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.providers.factory import Providers
from fathom2loom.settings import Settings, get_settings

__all__ = ["WorkerContext", "get_context"]


@dataclass
class WorkerContext:
    settings: Settings
    pb: PocketBase
    redis: redis.Redis
    providers: Providers
    keybox: KeyBox
    pid: int

    @classmethod
    def create(cls, settings: Settings) -> WorkerContext:
        client = redis.Redis.from_url(settings.redis_url)
        return cls(
            settings=settings,
            pb=PocketBase.from_settings(settings),
            redis=client,
            providers=Providers.from_settings(settings, client),
            keybox=KeyBox(settings.encryption_key, settings.previous_encryption_keys),
            pid=os.getpid(),
        )

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

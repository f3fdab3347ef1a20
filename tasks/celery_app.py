"""The Celery app, configured from `fathom2loom.settings` and nothing else.

Workers, beat and Flower all start from here (`celery -A tasks.celery_app ...`). A bad setting
stops the process at import with one line naming the variable.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from celery import Celery
from kombu import Queue

from beat_schedule import beat_schedule
from fathom2loom.settings import ConfigError, Settings, get_settings
from tasks import redis_transport

__all__ = ["app", "celery_config"]


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings; secrets never travel in task arguments, so JSON is all we serialise.

    Long transfers: late acks (a message is acked only when its run ends) with one reserved
    task per process, so a busy process never holds a task another could run; a visibility
    timeout above the longest run. There are no countdown or ETA tasks: a transfer that must wait
    records the wait on its row and ends, and the dispatcher sends it again when it is due. A
    worker that dies is not the broker's to recover: its row's lease and marker run out and the
    dispatcher sends the row again, so messages of killed pool children are not requeued.
    Connections to Redis are retried forever: no process exits because Redis went away.
    """
    transport = {
        "visibility_timeout": settings.celery_visibility_timeout_seconds,
        "unacked_restore_interval": settings.celery_restore_interval_seconds,
        "unacked_restore_throttle": 1,
    }
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        # A stopped worker hands its rows back within a chunk (tasks.lifecycle); should a run
        # not end, a cold shutdown still gives it this long before it is cut off.
        "worker_soft_shutdown_timeout": 10.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "broker_transport_options": transport,
        "result_backend_transport_options": {
            "visibility_timeout": settings.celery_visibility_timeout_seconds
        },
        "task_soft_time_limit": settings.transfer_time_limit_seconds,
        "task_time_limit": settings.transfer_time_limit_seconds + 60,
        "task_track_started": True,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "result_expires": 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "beat_schedule": beat_schedule(settings),
        # Transfers and the dispatcher's own work travel on separate queues, so a busy fleet of
        # transfers never delays a sync; a worker consumes both unless told otherwise (-Q).
        "task_queues": (Queue("transfers"), Queue("dispatch")),
        "task_default_queue": "transfers",
        "task_routes": {
            "fathom2loom.sync_queue": {"queue": "dispatch"},
            "fathom2loom.flush_logs": {"queue": "dispatch"},
            "fathom2loom.check_keys": {"queue": "dispatch"},
            "fathom2loom.auto_move_webhooks": {"queue": "dispatch"},
            "fathom2loom.auto_move_catch_up": {"queue": "dispatch"},
        },
        "beat_scheduler": "tasks.scheduler:HealingRedBeatScheduler",
        **_redbeat_connection(settings.redis_url),
        "beat_max_loop_interval": 5,
        "redbeat_lock_timeout": 30,
    }


def _redbeat_connection(redis_url: str) -> dict[str, Any]:
    """redbeat's Redis, with the password as an option rather than in the URL.

    Celery masks the broker URL and option values named like secrets wherever it shows its
    configuration (Flower's worker page), but not other URLs.
    """
    parts = urlsplit(redis_url)
    if not parts.password:
        return {"redbeat_redis_url": redis_url}
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    netloc += f":{parts.port}" if parts.port else ""
    return {
        "redbeat_redis_url": urlunsplit(parts._replace(netloc=netloc)),
        "redbeat_redis_options": {"password": unquote(parts.password)},
    }


def _settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        print(f"fathom2loom: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


redis_transport.install()
app = Celery(
    "fathom2loom",
    include=[
        "tasks.lifecycle",
        "tasks.sync_queue",
        "tasks.transfer",
        "tasks.logging_sink",
        "tasks.keys_check",
        "tasks.auto_move",
        "tasks.realtime_wakeup",
    ],
)
app.conf.update(celery_config(_settings_or_exit()))

"""The Celery beat schedule: which periodic tasks run, and how often.

`tasks.celery_app` installs `beat_schedule(settings)` as `beat_schedule`. Beat runs with
celery-redbeat's scheduler, so a second beat process is a hot standby, not a second ticker.
"""

from __future__ import annotations

from typing import Any

from fathom2loom.settings import Settings

__all__ = ["KEY_CHECK_SECONDS", "beat_schedule"]

# Saved keys are checked at once on a wake-up (PocketBase realtime); this sweep is the safety net.
KEY_CHECK_SECONDS = 60.0


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    interval = settings.sync_interval_seconds
    return {
        "sync-queue": {
            "task": "fathom2loom.sync_queue",
            "schedule": interval,
            # A tick nobody picked up in time is dropped: the next one does the same work.
            "options": {"queue": "dispatch", "expires": max(interval * 2, 5.0)},
        },
        "check-keys": {
            "task": "fathom2loom.check_keys",
            "schedule": KEY_CHECK_SECONDS,
            "options": {"queue": "dispatch", "expires": KEY_CHECK_SECONDS},
        },
        "auto-move-webhooks": {
            "task": "fathom2loom.auto_move_webhooks",
            "schedule": settings.auto_move_reconcile_seconds,
            "options": {"queue": "dispatch", "expires": settings.auto_move_reconcile_seconds},
        },
        "auto-move-catch-up": {
            "task": "fathom2loom.auto_move_catch_up",
            "schedule": settings.auto_move_poll_seconds,
            "options": {"queue": "dispatch", "expires": settings.auto_move_poll_seconds},
        },
        "flush-logs": {
            "task": "fathom2loom.flush_logs",
            "schedule": settings.log_flush_interval_seconds,
            "options": {
                "queue": "dispatch",
                "expires": max(settings.log_flush_interval_seconds * 2, 5.0),
            },
        },
    }

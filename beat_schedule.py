"""The Celery beat schedule: which periodic tasks run, and how often.

Entries are added as the tasks they name land (the dispatcher's sync and the log sink's flush);
`tasks.celery_app` installs this mapping as `beat_schedule`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BEAT_SCHEDULE"]

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}

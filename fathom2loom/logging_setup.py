"""How every process logs, in one `dictConfig`: the console (stdout, what `docker-compose logs`
shows, secrets masked) and the log sink (`logs` in PocketBase, through Redis).

Workers and beat get it from Celery's `setup_logging` signal (`tasks.logging_sink`: Celery then
leaves logging to us), at the `--loglevel` they were started with; the CLI and the HTTP process
from `configure_logging` directly (the CLI's console from WARNING up: its answers are printed).
Our own loggers (`fathom2loom`, `tasks`) log from INFO up; httpx and httpcore from WARNING up,
at any level, since their INFO lines carry URLs (signed ones among them); the sink keeps other
libraries' records from WARNING up (`logsink.handler.ServiceFilter`).
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from fathom2loom.settings import Settings

__all__ = ["configure_logging", "logging_config"]

CONSOLE_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(name)s: %(message)s"
CHATTY_LIBRARIES = ("httpx", "httpcore")


def logging_config(settings: Settings, *, console_level: str | int = "INFO") -> dict[str, Any]:
    level = logging.getLevelName(console_level) if isinstance(console_level, int) else console_level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "fathom2loom.redact.RedactingFilter"}},
        "formatters": {"console": {"format": CONSOLE_FORMAT}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "console",
                "filters": ["redact"],
                "level": str(level).upper(),
            },
            "sink": {
                "()": "fathom2loom.logsink.handler.RedisLogHandler",
                "redis_url": settings.redis_url,
                "max_records": settings.log_buffer_max_records,
            },
        },
        "loggers": {
            **{name: {"level": "INFO"} for name in ("fathom2loom", "tasks")},
            **{name: {"level": "WARNING"} for name in CHATTY_LIBRARIES},
        },
        "root": {"level": "INFO", "handlers": ["console", "sink"]},
    }


def configure_logging(settings: Settings, *, console_level: str | int = "INFO") -> None:
    logging.config.dictConfig(logging_config(settings, console_level=console_level))

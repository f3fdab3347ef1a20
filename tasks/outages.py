"""Housekeeping tasks ride out PocketBase or Redis being away for a while.

Beat sends them again on its next tick (or their sweep), so a task that finds a server away has
nothing to lose by stopping: it says so in one warning line and returns. Raising would only fill
the worker's log with a traceback per tick for an outage the operator sees plainly anyway.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis

from fathom2loom.errors import PocketBaseUnavailable

__all__ = ["rides_out_outages"]

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def rides_out_outages(work: Callable[P, R]) -> Callable[P, R | None]:
    """`work`, returning None with a warning when PocketBase or Redis is away."""

    @functools.wraps(work)
    def run(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return work(*args, **kwargs)
        except PocketBaseUnavailable as exc:
            away, cause = "PocketBase", str(exc)
        except redis.RedisError as exc:
            away, cause = "Redis", f"{type(exc).__name__}: {exc}"
        log.warning("%s: %s is away (%s); the next run catches up", work.__name__, away, cause)
        return None

    return run

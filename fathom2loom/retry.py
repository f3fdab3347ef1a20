"""The one retry engine every client uses, and the one backoff formula every wait uses.

`retrying` runs an attempt until it returns. An attempt that may succeed if tried again raises
`Retryable(error)`: the engine waits (the error's own `retry_after`, else the backoff) and tries
again, at most `policy.attempts` times and never waiting longer than `policy.max_sleep` at once;
then it raises the error itself, chained to what caused it. Anything else an attempt raises goes
straight to the caller. The PocketBase client and the provider clients (Fathom, Loom, tus) differ
only in what they call retryable.

The backoff is exponential, capped, with equal jitter (a random point in the upper half of the
step): many workers that failed together do not come back together, and no wait collapses to
nothing (a poll must not spin).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["RetryPolicy", "Retryable", "backoff_delay", "retrying"]

T = TypeVar("T")


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds before retry `attempt` (1-based): uniform in [d/2, d], d = min(cap, base·2^n)."""
    step = min(cap, base * 2 ** (max(attempt, 1) - 1))
    return random.uniform(step / 2, step)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries before it gives the fault back to its caller."""

    attempts: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    # The longest single wait spent inside the call; a longer one raises the error at once (a
    # transfer records a long wait on its row rather than hold a worker slot). `math.inf`: any.
    max_sleep: float = 3.0


class Retryable(Exception):
    """Raised by an attempt: `error` may not happen again, after `retry_after` or the backoff."""

    def __init__(self, error: Exception, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def retrying(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`attempt()`'s result, trying again while it raises `Retryable` (see the module)."""
    count = 0
    while True:
        try:
            return attempt()
        except Retryable as retry:
            count += 1
            delay = retry.retry_after
            if delay is None:
                delay = backoff_delay(count, policy.backoff_base, policy.backoff_cap)
            if count >= policy.attempts or delay > policy.max_sleep:
                raise retry.error from retry.__cause__
            sleep(delay)

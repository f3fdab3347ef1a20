"""The one backoff formula every retry loop and every wait uses: exponential, capped, jittered.

Equal jitter, a random point in the upper half of the step: many workers that failed together
do not come back together, and no wait collapses to nothing (a poll must not spin).
"""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds before retry `attempt` (1-based): uniform in [d/2, d], d = min(cap, base·2^n)."""
    step = min(cap, base * 2 ** (max(attempt, 1) - 1))
    return random.uniform(step / 2, step)

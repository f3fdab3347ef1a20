"""Exponential backoff with full jitter, shared by every client that retries."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number `attempt` (1-based): random in [0, min(cap, base·2^n)].

    Full jitter keeps many workers that failed together from retrying together.
    """
    return random.uniform(0, min(cap, base * (2 ** (attempt - 1))))

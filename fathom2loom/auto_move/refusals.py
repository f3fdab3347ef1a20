"""What the webhook receiver does with deliveries it refuses: it counts them, tells a sample, and
stops listening to a source that keeps sending them.

Anyone can POST to the receiver. Before this, each refused delivery cost a PocketBase lookup, a
log line and a `logs` record: 500 unsigned POSTs in a second wrote 500 records. Now:

- each source (the client address; behind a proxy, the one it forwards, see
  WEBHOOK_TRUSTED_PROXIES) may be refused WEBHOOK_REFUSALS_PER_MINUTE times in any minute; past
  that, it is answered 429 with `Retry-After` before anything is looked up. Fathom retries a
  delivery answered 429, and the catch-up poll is the net under it, so a legitimate delivery
  caught in that is late, never lost. Replays (409) do not count: only the signer can make them.
  (A delivery holds its place while it is being checked, a few milliseconds, so that concurrent
  ones cannot pass the budget together: more than that many at the very same moment from one
  source wait for the same Retry-After.)
- the first refusal of each kind in each report window is logged with its details; the rest are
  counted, and one summary line per window says how many of each kind, from how many sources.

The state is per receiver process (a second replica counts its own).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

__all__ = ["NOT_COUNTED", "RefusalGuard"]

log = logging.getLogger("fathom2loom.auto_move.receiver")
WINDOW_SECONDS = 60.0
# Not held against the source: replays (only whoever holds the secret can make them). (A 429 is
# not held either: it is answered before `admit` holds a place.)
NOT_COUNTED = frozenset({409})
MAX_SOURCES = 10_000  # sources remembered at once; idle ones are forgotten first


class RefusalGuard:
    def __init__(
        self,
        per_minute: int,
        *,
        report_seconds: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.report_seconds = report_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = {}  # source -> times of its counted refusals
        self._counts: Counter[tuple[int, str]] = Counter()
        self._sources: set[str] = set()
        self._window_start = clock()

    def admit(self, source: str) -> float | None:
        """Hear a delivery from `source` (None), or say in how many seconds it may come back.

        A delivery heard holds a place in its source's budget until it turns out not refused
        (`release`), so that concurrent deliveries cannot pass the budget together."""
        now = self._clock()
        with self._lock:
            recent = self._recent.setdefault(source, deque())
            self._expire(recent, now)
            if len(recent) >= self.per_minute:
                return max(1.0, WINDOW_SECONDS - (now - recent[0]))
            recent.append(now)
            if len(self._recent) > MAX_SOURCES:
                self._forget_idle(now)
        return None

    def release(self, source: str) -> None:
        """A delivery `admit` heard was not refused (or not by its sender's fault)."""
        with self._lock:
            recent = self._recent.get(source)
            if recent:
                recent.pop()

    def refused(self, source: str, status: int, kind: str, why: str, extra: dict[str, Any]) -> None:
        """Count a refusal; log it when it is the first of its kind in this window."""
        if status in NOT_COUNTED:
            self.release(source)
        now = self._clock()
        with self._lock:
            first = self._counts[(status, kind)] == 0
            self._counts[(status, kind)] += 1
            self._sources.add(source)
        if first:
            log.warning("webhook refused (%d): %s", status, why, extra={**extra, "source": source})
        self.report(now)

    def report(self, now: float | None = None) -> None:
        """Say what was refused in the window that ended, in one line (nothing if nothing)."""
        now = self._clock() if now is None else now
        with self._lock:
            if now - self._window_start < self.report_seconds:
                return
            counts, sources = self._counts, len(self._sources)
            self._counts, self._sources, self._window_start = Counter(), set(), now
        if counts:
            kinds = ", ".join(f"{s} {k} x{n}" for (s, k), n in sorted(counts.items()))
            log.warning(
                "webhook refusals in the last %.0f s: %s (from %d source(s))",
                self.report_seconds,
                kinds,
                sources,
                extra={"component": "webhooks", "refused": sum(counts.values())},
            )

    def _expire(self, recent: deque[float], now: float) -> None:
        while recent and now - recent[0] >= WINDOW_SECONDS:
            recent.popleft()

    def _forget_idle(self, now: float) -> None:
        for source in list(self._recent):
            self._expire(self._recent[source], now)
            if not self._recent[source]:
                del self._recent[source]

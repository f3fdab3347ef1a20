"""What the webhook receiver does with deliveries it refuses: it counts them, tells a sample, and
stops listening to whoever keeps sending them.

Anyone can POST to the receiver. Before this, each refused delivery cost a PocketBase lookup, a
log line and a `logs` record: 500 unsigned POSTs in a second wrote 500 records. Now:

- a source (the client address, an IPv6 one by its /64; behind a proxy listed in
  WEBHOOK_TRUSTED_PROXIES, the address it forwards) may be refused WEBHOOK_REFUSALS_PER_MINUTE
  times in any minute for one user id, and twice that in all. Past the first, deliveries from it
  for that user id, past the second, for any user id it has never brought a signed delivery for,
  are answered 429 with `Retry-After` before anything is looked up. All of Fathom's deliveries
  come from Fathom's few addresses, and anyone with a Fathom account can point webhooks of their
  own at made-up user ids: they can slow down deliveries for users Fathom has not delivered to
  yet, never for the others. Fathom retries a delivery answered 429 and the catch-up poll is the
  net under it, so a genuine delivery caught in this is late, never lost. Replays (409) do not
  count: only the signer can make them.
- a delivery holds its place in those budgets while it is checked (milliseconds), so concurrent
  ones cannot pass a budget together;
- the first refusal of each kind in each report window is logged with its details; the rest are
  counted, and one summary line per window says how many of each kind, from how many sources.

The tables are bounded (the least recently seen are forgotten first) and per receiver process (a
second replica counts its own).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["NOT_COUNTED", "SOURCE_FACTOR", "RefusalGuard", "source_of"]

log = logging.getLogger("fathom2loom.auto_move.receiver")
WINDOW_SECONDS = 60.0
# Not held against the source: replays (only whoever holds the secret can make them). (A 429 is
# not held either: it is answered before `admit` holds a place.)
NOT_COUNTED = frozenset({409})
SOURCE_FACTOR = 2  # a source's refusals in all, as a multiple of its refusals per user id
MAX_ENTRIES = 20_000  # budgets, and user ids known to be delivered to, remembered at once


def source_of(address: str) -> str:
    """Who a delivery counts against: the address, an IPv6 one by its /64 (one host's share)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class _Windows:
    """Times of the last minute's events per key, least recently seen forgotten first."""

    def __init__(self) -> None:
        self._by_key: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def recent(self, key: Hashable, now: float) -> deque[float]:
        times = self._by_key.get(key)
        if times is None:
            times = self._by_key[key] = deque()
            while len(self._by_key) > MAX_ENTRIES:
                self._by_key.popitem(last=False)
        self._by_key.move_to_end(key)
        while times and now - times[0] >= WINDOW_SECONDS:
            times.popleft()
        return times

    def release(self, key: Hashable) -> None:
        times = self._by_key.get(key)
        if times:
            times.pop()


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
        self._pairs = _Windows()  # (source, user id) -> its counted refusals
        self._sources = _Windows()  # source -> its counted refusals, for any user id
        self._known: OrderedDict[str, None] = OrderedDict()  # users signed deliveries came for
        self._counts: Counter[tuple[int, str]] = Counter()
        self._seen_sources: set[str] = set()
        self._window_start = clock()

    def admit(self, source: str, user_id: str) -> float | None:
        """Hear a delivery (None, holding its place), or say in how many seconds it may come."""
        now, group = self._clock(), source_of(source)
        with self._lock:
            pair = self._pairs.recent((group, user_id), now)
            if len(pair) >= self.per_minute:
                return max(1.0, WINDOW_SECONDS - (now - pair[0]))
            overall = self._sources.recent(group, now)
            if len(overall) >= self.per_minute * SOURCE_FACTOR and user_id not in self._known:
                return max(1.0, WINDOW_SECONDS - (now - overall[0]))
            pair.append(now)
            overall.append(now)
        return None

    def release(self, source: str, user_id: str) -> None:
        """A delivery `admit` heard was not refused (or not by its sender's fault)."""
        group = source_of(source)
        with self._lock:
            self._pairs.release((group, user_id))
            self._sources.release(group)

    def delivered(self, user_id: str) -> None:
        """A signed delivery came for `user_id`: it is heard even from a source over budget."""
        with self._lock:
            self._known[user_id] = None
            self._known.move_to_end(user_id)
            while len(self._known) > MAX_ENTRIES:
                self._known.popitem(last=False)

    def refused(
        self, source: str, user_id: str, status: int, kind: str, why: str, extra: dict[str, Any]
    ) -> None:
        """Count a refusal; log it when it is the first of its kind in this window."""
        if status in NOT_COUNTED:
            self.release(source, user_id)
        now = self._clock()
        with self._lock:
            first = self._counts[(status, kind)] == 0
            self._counts[(status, kind)] += 1
            self._seen_sources.add(source_of(source))
        if first:
            log.warning("webhook refused (%d): %s", status, why, extra={**extra, "source": source})
        self.report(now)

    def report(self, now: float | None = None) -> None:
        """Say what was refused in the window that ended, in one line (nothing if nothing)."""
        now = self._clock() if now is None else now
        with self._lock:
            if now - self._window_start < self.report_seconds:
                return
            counts, sources = self._counts, len(self._seen_sources)
            self._counts, self._seen_sources, self._window_start = Counter(), set(), now
        if counts:
            kinds = ", ".join(f"{s} {k} x{n}" for (s, k), n in sorted(counts.items()))
            log.warning(
                "webhook refusals in the last %.0f s: %s (from %d source(s))",
                self.report_seconds,
                kinds,
                sources,
                extra={"component": "webhooks", "refused": sum(counts.values())},
            )

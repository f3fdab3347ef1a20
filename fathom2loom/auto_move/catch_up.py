"""The catch-up poll: each opted-in user's new meetings, found even when no webhook came.

Beat runs it every AUTO_MOVE_POLL_SECONDS. For each user it lists the meetings created since the
user's watermark, oldest first, queues those never queued (`enqueue`), and moves the watermark
only past what it went through: a poll cut short (PocketBase or Fathom away) starts again from
there. A meeting becomes visible in Fathom's list only once processed, which may be after a
later meeting, so each listing looks back AUTO_MOVE_LOOKBACK_SECONDS before the watermark (never
before the user's `auto_move_since`); what it finds again is already queued and left alone.

The listing shares the user's Fathom rate budget with transfers and stops short of its last
AUTO_MOVE_RESERVED_CALLS calls, without waiting: a user whose budget is busy is polled next time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from fathom2loom.api_keys import KeyStore
from fathom2loom.auto_move.enqueue import enqueue_new_meeting
from fathom2loom.auto_move.registration import working_key
from fathom2loom.auto_move.store import AutoMoveStore, OptedIn
from fathom2loom.errors import ProviderError, RateLimited
from fathom2loom.pocketbase.dates import now_iso, parse_date, pb_date
from fathom2loom.providers.factory import Providers
from fathom2loom.providers.fathom import FathomClient
from fathom2loom.redact import secret_scope
from fathom2loom.settings import Settings

__all__ = ["CatchUpReport", "catch_up"]

log = logging.getLogger(__name__)


@dataclass
class CatchUpReport:
    queued: list[str] = field(default_factory=list)  # row ids
    users: int = 0
    deferred: int = 0  # users left for the next poll (rate budget busy, Fathom away)


def catch_up(
    store: AutoMoveStore, keys: KeyStore, providers: Providers, settings: Settings
) -> CatchUpReport:
    report = CatchUpReport()
    lookback = timedelta(seconds=settings.auto_move_lookback_seconds)
    for user in store.opted_in():
        key, _ = working_key(store, keys, user.user_id)
        if key is None:
            continue  # The registration says why on the user's row.
        report.users += 1
        with secret_scope(key):
            try:
                report.queued += _catch_up(
                    store, providers.fathom(key, background=True), user, lookback
                )
            except RateLimited:
                report.deferred += 1  # Transfers are using the budget: next poll.
            except ProviderError as exc:
                report.deferred += 1
                log.warning(
                    "auto-move: could not list user %s's new meetings (%s); next poll",
                    user.user_id,
                    exc.user_message,
                    extra={"user_id": user.user_id},
                )
    return report


def _catch_up(
    store: AutoMoveStore, fathom: FathomClient, user: OptedIn, lookback: timedelta
) -> list[str]:
    row = store.start(user)
    floor = replace(user, row=row).counts_from or datetime.now(UTC)
    watermark = max(parse_date(row.get("watermark")) or floor, floor)
    meetings = [
        m
        for m in fathom.meetings(created_after=max(watermark - lookback, floor))
        if m.created_at >= floor
    ]
    meetings.sort(key=lambda m: (m.created_at, m.recording_id))
    queued, reached = [], watermark
    try:
        for meeting in meetings:
            row_id = enqueue_new_meeting(store.pb, user.user_id, meeting)
            if row_id is not None:
                queued.append(row_id)
                log.info(
                    "auto-move: queued meeting %s found by the catch-up poll",
                    meeting.recording_id,
                    extra={"user_id": user.user_id, "row_id": row_id},
                )
            reached = max(reached, meeting.created_at)
    finally:
        store.update(row, watermark=pb_date(reached), polled_at=now_iso())
    return queued

"""The catch-up poll: each opted-in user's new meetings, found even when no webhook came.

Beat runs it every AUTO_MOVE_POLL_SECONDS. For each user it lists the meetings they recorded
(`recorded_by`: a key also sees teammates' shared meetings, which the webhook never sends) created
since the user's watermark, oldest first, in slices of at most a week: each slice's meetings are
queued unless ever queued (`enqueue`) and the watermark is saved past the slice, so a long backlog
(an `auto_move_since` far back, a key broken for weeks) is worked through over a few polls, and a
poll cut short (PocketBase or Fathom away, the budget spent) starts again where it stopped. A
meeting becomes visible in Fathom's list only once processed, which may be after a later meeting,
so each listing looks back AUTO_MOVE_LOOKBACK_SECONDS before the watermark (never before the
user's `counts_from`); what it finds again is already queued and left alone.

The listing shares the user's Fathom rate budget with transfers and stops short of its last
AUTO_MOVE_RESERVED_CALLS calls, without waiting: a user whose budget is busy is polled next time.
Nor does it queue a backlog faster than the user could by hand: with USER_MAX_ACTIVE_TRANSFERS of
their rows active it stops, the watermark before the first meeting it left, until some finish.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from fathom2loom.api_keys import KeyStore
from fathom2loom.auto_move.enqueue import enqueue_new_meeting
from fathom2loom.auto_move.registration import working_key
from fathom2loom.auto_move.store import AutoMoveRow, AutoMoveStore, OptedIn
from fathom2loom.errors import PocketBaseRequestError, ProviderError, RateLimited
from fathom2loom.pocketbase.dates import now_iso, parse_date, pb_date
from fathom2loom.providers.factory import Providers
from fathom2loom.providers.fathom import FathomClient, Meeting
from fathom2loom.queue_store import QueueStore
from fathom2loom.redact import secret_scope
from fathom2loom.settings import Settings
from fathom2loom.user_limits import max_active_transfers

__all__ = ["CatchUpReport", "catch_up"]

log = logging.getLogger(__name__)
SLICE = timedelta(days=7)  # one listing (a request or a few) per week of a backlog
SLICE_OVERLAP = timedelta(seconds=1)  # whether Fathom's bounds are inclusive or not, none missed


class _Full(Exception):
    """The user has as many active rows as they may have: the rest waits for the next poll."""


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
    cap = max_active_transfers(store.pb)
    for user in store.opted_in():
        key, _ = working_key(store, keys, user.user_id)
        if key is None:
            continue  # The registration says why on the user's row.
        report.users += 1
        with secret_scope(key):
            try:
                fathom = providers.fathom(key, background=True)
                room = None
                if cap is not None:
                    room = cap - QueueStore(store.pb).count_active(user.user_id)
                _catch_up(store, fathom, user, lookback, report.queued, room)
            except _Full:
                report.deferred += 1
                log.info(
                    "auto-move: user %s has %d transfers active (USER_MAX_ACTIVE_TRANSFERS); the"
                    " rest of their meetings wait for the next poll",
                    user.user_id,
                    cap,
                    extra={"user_id": user.user_id},
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
            except PocketBaseRequestError as exc:  # This user's rows only (turned off meanwhile)
                report.deferred += 1
                log.warning(
                    "auto-move: user %s's catch-up stopped (%s); next poll",
                    user.user_id,
                    exc,
                    extra={"user_id": user.user_id},
                )
    return report


def _catch_up(
    store: AutoMoveStore,
    fathom: FathomClient,
    user: OptedIn,
    lookback: timedelta,
    queued: list[str],
    room: int | None,
) -> None:
    """Queue the user's meetings slice by slice; `room`: how many more rows may be made (None:
    no limit), `_Full` when it runs out with meetings left."""
    row = store.start(user)
    row = _follow_the_users_settings(store, user, row)
    floor = replace(user, row=row).counts_from or datetime.now(UTC)
    recorder = row.recorded_by or None
    watermark = max(parse_date(row.watermark) or floor, floor)
    start, now = max(watermark - lookback, floor), datetime.now(UTC)
    if start >= now:
        return  # Counting from a date still to come.
    while True:
        end = min(start + SLICE, now)
        meetings = [
            m
            for m in fathom.meetings(
                created_after=start,
                created_before=end,
                **({"recorded_by": [recorder]} if recorder else {}),
            )
            if m.created_at >= floor and _recorded_by(m, recorder)
        ]
        meetings.sort(key=lambda m: (m.created_at, m.recording_id))
        reached = watermark
        try:
            for meeting in meetings:
                if room is not None and room <= 0:
                    raise _Full
                row_id = enqueue_new_meeting(store.pb, user.user_id, meeting)
                if row_id is not None:
                    room = None if room is None else room - 1
                    queued.append(row_id)
                    log.info(
                        "auto-move: queued meeting %s found by the catch-up poll",
                        meeting.recording_id,
                        extra={"user_id": user.user_id, "row_id": row_id},
                    )
                reached = max(reached, meeting.created_at)
            if end < now:
                reached = max(reached, end)  # The whole slice is through.
        finally:
            row = store.update(row, watermark=pb_date(reached), polled_at=now_iso())
        watermark = reached
        if end >= now:
            return
        start = end - SLICE_OVERLAP


def _recorded_by(meeting: Meeting, recorder: str | None) -> bool:
    theirs = meeting.recorder_email
    return recorder is None or theirs is None or theirs.lower() == recorder.lower()


def _follow_the_users_settings(
    store: AutoMoveStore, user: OptedIn, row: AutoMoveRow
) -> AutoMoveRow:
    """Keep the row in step with the user's settings. An `auto_move_since` moved back, or a
    change of whose recordings count, means meetings the poll went past may now count: it
    starts again from `counts_from` (what it finds again is already queued)."""
    counts_from = row.since
    changes: dict[str, str] = {}
    if user.since is not None and user.since != counts_from:
        changes["counts_from"] = pb_date(user.since)
        if counts_from is None or user.since < counts_from:
            changes["watermark"] = pb_date(user.since)
    recorder = store.recorder(user, row)
    if recorder and recorder.lower() != row.recorded_by.lower():
        changes["recorded_by"] = recorder
        if row.recorded_by:  # Not the first one: look again from the start.
            start = user.since or counts_from
            if start is not None:
                changes["watermark"] = pb_date(start)
    return store.update(row, **changes) if changes else row

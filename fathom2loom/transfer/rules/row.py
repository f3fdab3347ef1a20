"""A run's beginning and end on the row: taking it up, counting runs that died, transient faults
waited out until the attempts run out, and the writes that complete, fail or defer it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from fathom2loom.pocketbase.dates import pb_date
from fathom2loom.providers.loom import LoomVideo
from fathom2loom.queue_rows import QueueRow, Status, TransferState
from fathom2loom.retry import backoff_delay
from fathom2loom.settings import Settings
from fathom2loom.transfer.rules.decisions import Changes, Decision
from fathom2loom.transfer.steps import RowFailed, Wait

__all__ = [
    "MAX_EXCUSED_OUTAGES",
    "completion",
    "deferral",
    "failure",
    "resume",
    "retry_later",
    "start",
]

# Runs of one row that a PocketBase outage may stop uncounted; past that they count, so a row
# that itself brings PocketBase down still ends.
MAX_EXCUSED_OUTAGES = 10


def start(row: QueueRow, now: datetime) -> Changes:
    """A pending row taken up: out of the line, its counters reset, its video's key kept."""
    state = TransferState(
        open_run=True,
        loom_generation=row.state.loom_generation,
        check_video=bool(row.loom_video_id),
    )
    return {
        "status": Status.PROCESSING,
        "started_at": pb_date(now),
        "position": 0,
        "attempts": 0,
        "error_message": "",
        "completed_at": "",
        "next_attempt_at": "",
        "wait_reason": "",
        "state": state,
    }


def resume(row: QueueRow, excused: bool, settings: Settings) -> Changes:
    """A processing row's next run. A previous run that never said how it ended (a killed
    worker) counts as an attempt, unless an outage of our own servers stopped it."""
    state, attempts = replace(row.state, open_run=True), row.attempts
    if row.state.open_run and excused and row.state.outage_runs < MAX_EXCUSED_OUTAGES:
        state.outage_runs += 1
    elif row.state.open_run:
        attempts += 1
        if attempts >= settings.transfer_max_attempts:
            raise RowFailed(
                f"The transfer stopped unexpectedly {attempts} times (its worker was killed"
                " or ran out of memory): retry later"
            )
    return {"attempts": attempts, "next_attempt_at": "", "wait_reason": "", "state": state}


def retry_later(
    row: QueueRow, cause: str, retry_after: float | None, settings: Settings
) -> Decision[Wait]:
    """A transient fault: counted, and waited out with backoff, until the attempts run out."""
    attempts, limit = row.attempts + 1, settings.transfer_max_attempts
    if attempts >= limit:
        raise RowFailed(f"{cause} (gave up after {attempts} attempts): retry later")
    delay = retry_after
    if delay is None:
        delay = backoff_delay(
            attempts, settings.transfer_retry_base_seconds, settings.transfer_retry_max_seconds
        )
    wait = Wait(
        min(delay, settings.transfer_retry_max_seconds),
        f"{cause}: trying again (attempt {attempts + 1} of {limit})",
    )
    return Decision(wait, {"attempts": attempts})


def _closed(row: QueueRow) -> TransferState:
    return replace(row.state, open_run=False)


def _ended(row: QueueRow) -> Changes:
    return {"next_attempt_at": "", "wait_reason": "", "state": _closed(row)}


def completion(row: QueueRow, video: LoomVideo, now: datetime) -> Changes:
    size = row.bytes_total or video.size_bytes
    return {
        "status": Status.COMPLETED,
        "completed_at": pb_date(now),
        "loom_video_id": video.id,
        "loom_url": video.share_url or "",
        "bytes_done": size,
        "bytes_total": size,
        "error_message": "",
        **_ended(row),
    }


def failure(row: QueueRow, message: str, now: datetime) -> Changes:
    return {
        "status": Status.FAILED,
        "error_message": message[:2000],
        "completed_at": pb_date(now),
        **_ended(row),
    }


def deferral(row: QueueRow, wait: Wait, now: datetime) -> Changes:
    """A wait recorded on the row: the dispatcher sends the row again when it is due."""
    return {
        "next_attempt_at": pb_date(now + timedelta(seconds=wait.seconds)),
        "wait_reason": wait.reason[:500],
        "state": _closed(row),
    }

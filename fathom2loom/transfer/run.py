"""One run of a transfer: take a queue row as far as it can go, and say what comes next.

The rules of the transfer live here, free of Celery: the caller (the Celery task in
`tasks/transfer.py`, or a test) passes in the row store, the key store and the provider clients,
holds the row's lease, and gets back a `Step`: `Done` with an outcome, or `Wait` with how long and
why. A wait longer than `TRANSFER_INLINE_WAIT_SECONDS` is recorded on the row (`next_attempt_at`,
`wait_reason`) and ends the run, so no worker slot sits idle while Fathom renders or Loom
processes; the dispatcher sends the row again when it is due.

Every fault ends in a state the user can read:
- permanent faults (a refused key, no such recording, a missing or damaged key, a bad meeting id,
  a write PocketBase refuses) fail the row at once with a message that says what to do;
- transient faults (network, 5xx, responses we cannot read, PocketBase away) are retried with
  backoff, counted in `attempts`, and fail the row after `TRANSFER_MAX_ATTEMPTS`;
- any other exception is caught here, logged with its traceback, and counted the same way;
- a run that dies without saying how it ended (a killed worker) is counted by the next run;
- stale provider state (a download or video the provider no longer has) is made again, boundedly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fathom2loom.api_keys import KeyStore, Provider
from fathom2loom.errors import (
    CoordinationUnavailable,
    Fathom2LoomError,
    LinkExpired,
    PermanentProviderError,
    PocketBaseNotFound,
    PocketBaseRequestError,
    PocketBaseUnavailable,
    RateLimited,
    TransientProviderError,
    UndecryptableKey,
    UploadGone,
    VideoGone,
)
from fathom2loom.logsink.context import bind
from fathom2loom.meeting_ids import InvalidMeetingId, canonical_meeting_id
from fathom2loom.pocketbase.dates import now_iso, parse_date
from fathom2loom.providers.factory import Providers
from fathom2loom.providers.fathom import DownloadFile, FathomClient
from fathom2loom.providers.loom import LoomClient, LoomVideo
from fathom2loom.providers.tus import UploadStopped
from fathom2loom.queue_rows import FINAL, QueueRow, QueueStore, Status, TransferState
from fathom2loom.redact import secret_scope
from fathom2loom.retry import backoff_delay
from fathom2loom.settings import Settings
from fathom2loom.transfer.fathom_file import fathom_file
from fathom2loom.transfer.loom_video import create_video, current_video, new_generation
from fathom2loom.transfer.meeting_notes import meeting_notes
from fathom2loom.transfer.progress import Progress
from fathom2loom.transfer.steps import Done, RowFailed, Step, Wait

__all__ = ["RunControl", "TransferPorts", "run_transfer"]

log = logging.getLogger("fathom2loom.transfer")
UPLOADABLE = ("awaiting_upload", "uploading")
HANDED_BACK = "handed back by a worker that shut down: another worker continues"
# Runs of one row that a PocketBase outage may stop uncounted; past that they count, so a row
# that itself brings PocketBase down still ends.
MAX_EXCUSED_OUTAGES = 10
TIME_LIMIT = "The transfer ran longer than TRANSFER_TIME_LIMIT_SECONDS allows"


@dataclass
class TransferPorts:
    """What a transfer needs from outside; all of it passed in, none of it built here."""

    rows: QueueStore
    keys: KeyStore
    providers: Providers
    settings: Settings


@dataclass
class RunControl:
    """The caller's side of a run: is the lease still ours, is the worker shutting down (then
    the row is handed back at the next chunk), where progress is reported, whether the row's
    previous run was stopped by an outage of our own servers (then it is not counted as an
    attempt: PocketBase being away is no fault of the row's), and who to tell when the row left
    the line (pending to processing: every row behind it moved up one place)."""

    lease_lost: Callable[[], bool] = field(default=lambda: False)
    on_progress: Callable[[int, int], None] = field(default=lambda done, total: None)
    shutting_down: Callable[[], bool] = field(default=lambda: False)
    previous_run_excused: Callable[[], bool] = field(default=lambda: False)
    stopped_by_outage: Callable[[], None] = field(default=lambda: None)
    left_the_line: Callable[[], None] = field(default=lambda: None)
    # The run's time limit, as the caller's runtime raises it (Celery's SoftTimeLimitExceeded).
    time_limit: tuple[type[BaseException], ...] = ()


def run_transfer(row_id: str, ports: TransferPorts, control: RunControl | None = None) -> Step:
    """Run the row's transfer as far as it goes now. The caller must hold the row's lease."""
    return _Run(row_id, ports, control or RunControl()).run()


class _Run:
    def __init__(self, row_id: str, ports: TransferPorts, control: RunControl) -> None:
        self.row_id = row_id
        self.rows = ports.rows
        self.ports = ports
        self.settings = ports.settings
        self.control = control

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Step:
        excused = self.control.previous_run_excused()  # Spent by every run, whatever it finds.
        row = self.rows.get(self.row_id)
        if row is None:
            return Done("gone")
        bind(user_id=row.user_id, meeting_id=row.meeting_id)
        if row.status in FINAL:
            if row.status == Status.CANCELLED:
                self._discard_video(row)
            return Done(row.status)
        if row.status == Status.PROCESSING and row.due_in() > 0:
            return Wait(row.due_in(), row.wait_reason)  # An early duplicate: leave the row be.
        begun = self._begin(row, excused)
        if not isinstance(begun, QueueRow):
            return begun
        try:
            return self._loop(begun)
        except PocketBaseUnavailable as exc:
            if exc.unreachable:  # PocketBase went down under this run: not the row's doing.
                self.control.stopped_by_outage()
            raise

    def _loop(self, row: QueueRow) -> Step:
        """Attempt, sleeping through short waits (at most `inline` seconds in all, so a run
        never sits in its slot for long); record a longer one on the row and stop."""
        slept, inline = 0.0, self.settings.transfer_inline_wait_seconds
        while True:
            step = self._attempt(row)
            if isinstance(step, Done):
                return step
            if slept + step.seconds > inline or self.control.shutting_down():
                return self._defer(row, step)
            if self.control.lease_lost():
                return Done("stopped")
            time.sleep(step.seconds)
            slept += step.seconds
            if self.rows.status(row.id) != Status.PROCESSING:
                self._discard_video(row)
                return Done(Status.CANCELLED)

    def _begin(self, row: QueueRow, excused: bool) -> QueueRow | Step:
        """Mark the row as being worked on; count a previous run that died without a word."""
        state = row.state
        if row.status == Status.PENDING:
            fresh = TransferState(
                open_run=True,
                loom_generation=state.loom_generation,
                check_video=bool(row.loom_video_id),
            )
            written = self.rows.save_unless_cancelled(
                row,
                status=Status.PROCESSING,
                started_at=now_iso(),
                position=0,
                attempts=0,
                error_message="",
                completed_at="",
                next_attempt_at="",
                wait_reason="",
                state=fresh,
            )
            if not written:
                return Done(Status.CANCELLED)
            self.control.left_the_line()
            return row
        attempts = row.attempts
        if state.open_run and excused and state.outage_runs < MAX_EXCUSED_OUTAGES:
            state.outage_runs += 1
            log.info("row %s: its previous run was stopped by an outage; not counted", row.id)
        elif state.open_run:
            attempts += 1
            log.warning("row %s: its previous run stopped without finishing", row.id)
            if attempts >= self.settings.transfer_max_attempts:
                return self._fail(
                    row,
                    f"The transfer stopped unexpectedly {attempts} times (its worker was killed"
                    " or ran out of memory): retry later",
                )
        state.open_run = True
        written = self.rows.save_unless_cancelled(
            row, attempts=attempts, next_attempt_at="", wait_reason="", state=state
        )
        return row if written else Done(Status.CANCELLED)

    def _attempt(self, row: QueueRow) -> Step:
        """One try; every exception becomes a step here."""
        try:
            return self._move(row)
        except RowFailed as exc:
            return self._fail(row, exc.message)
        except PermanentProviderError as exc:
            return self._fail(row, exc.user_message)
        except VideoGone:
            return self._video_gone(row)
        except RateLimited as exc:  # A budget refills by itself: waited out, never counted.
            return Wait(exc.retry_after or backoff_delay(1, 1.0, 60.0), exc.user_message)
        except (TransientProviderError, PocketBaseUnavailable, CoordinationUnavailable) as exc:
            return self._transient(row, exc.user_message, exc.retry_after)
        except PocketBaseNotFound:
            return Done("gone")
        except PocketBaseRequestError as exc:
            return self._fail(
                row,
                f"PocketBase refused to save the transfer's state ({exc}): ask the operator"
                " to check the queue collection",
            )
        except Exception as exc:  # The last resort: a bug or an unforeseen answer.
            log.exception("row %s: unexpected %s", row.id, type(exc).__name__)
            if isinstance(exc, self.control.time_limit):
                return self._transient(row, TIME_LIMIT, None)
            return self._transient(row, _unexpected(exc), None)

    # -- moving the recording ----------------------------------------------------------------

    def _move(self, row: QueueRow) -> Step:
        recording = _recording_id(row)
        fathom_key, loom_key = self._key(row, "Fathom"), self._key(row, "Loom")
        # The keys, then the signed URL, are masked in any log line wherever they turn up.
        with secret_scope(fathom_key, loom_key):
            fathom = self.ports.providers.fathom(fathom_key)
            loom = self.ports.providers.loom(loom_key)
            video = current_video(loom, self.rows, row, self.settings)
            if video is None or video.status in UPLOADABLE:
                got = fathom_file(fathom, self.rows, row, recording, self.settings)
                if isinstance(got, Wait):
                    return got
                with secret_scope(got.url):
                    if video is None:
                        notes = meeting_notes(fathom, recording, parse_date(row.recorded_at))
                        video = create_video(
                            loom, self.rows, row, recording, got, notes, self.settings
                        )
                    if video.status in UPLOADABLE:
                        stopped = self._upload(fathom, loom, row, video, got)
                        if stopped is not None:
                            return stopped
                        video = loom.get_video(video.id)
            return self._finish_or_wait(loom, row, video)

    def _upload(
        self,
        fathom: FathomClient,
        loom: LoomClient,
        row: QueueRow,
        video: LoomVideo,
        file: DownloadFile,
    ) -> Step | None:
        """Stream the file into the video; a step when the upload could not run to its end."""
        progress = Progress(
            self.rows,
            row,
            file.file_size_bytes,
            self.settings.transfer_progress_interval_seconds,
            self.control,
        )
        log.info("transfer %s: uploading to Loom video %s", row.id, video.id)
        try:
            loom.upload(
                video,
                lambda offset: fathom.stream(file, start=offset),
                on_progress=progress,
                should_stop=progress.should_stop,
            )
        except UploadStopped:
            if progress.stopped_by == "cancel":
                self._delete_unfinished(loom, video.id)
                log.info("transfer %s cancelled mid-upload", row.id)
                return Done(Status.CANCELLED)
            if progress.stopped_by == "shutdown":
                log.info("transfer %s handed back: its worker is shutting down", row.id)
                return Wait(0.0, HANDED_BACK)
            log.warning("transfer %s stopped: its lease was lost", row.id)
            return Done("stopped")
        except UploadGone:
            loom.get_video(video.id)  # VideoGone when the whole video went with the upload.
            raise
        except LinkExpired as exc:
            self.rows.save(row, fathom_download_id="")
            return Wait(0.0, exc.user_message)
        return None

    def _finish_or_wait(self, loom: LoomClient, row: QueueRow, video: LoomVideo) -> Step:
        if video.status == "ready":
            return self._complete(loom, row, video)
        if video.status == "failed":
            reason = video.failure_reason or "no reason given"
            raise RowFailed(
                f"Loom could not process the video ({reason}): retry to upload it again"
            )
        row.state.loom_polls += 1
        self.rows.save(row, state=row.state)
        delay = backoff_delay(
            row.state.loom_polls,
            self.settings.loom_poll_initial_seconds,
            self.settings.loom_poll_max_seconds,
        )
        return Wait(delay, "Loom is processing the video")

    # -- outcomes ------------------------------------------------------------------------------

    def _closed(self, row: QueueRow) -> TransferState:
        row.state.open_run = False
        return row.state

    def _complete(self, loom: LoomClient, row: QueueRow, video: LoomVideo) -> Step:
        size = row.bytes_total or video.size_bytes
        finished = self.rows.save_unless_cancelled(
            row,
            status=Status.COMPLETED,
            completed_at=now_iso(),
            loom_video_id=video.id,
            loom_url=video.share_url or "",
            bytes_done=size,
            bytes_total=size,
            error_message="",
            next_attempt_at="",
            wait_reason="",
            state=self._closed(row),
        )
        if not finished:
            return Done(Status.CANCELLED)  # Cancelled at the last moment: the video stays whole.
        log.info("transfer %s completed: Loom video %s", row.id, video.id)
        return Done(Status.COMPLETED, video.id)

    def _fail(self, row: QueueRow, message: str) -> Done:
        written = self.rows.save_unless_cancelled(
            row,
            status=Status.FAILED,
            error_message=message[:2000],
            completed_at=now_iso(),
            next_attempt_at="",
            wait_reason="",
            state=self._closed(row),
        )
        log.warning("transfer %s failed: %s", row.id, message)
        return Done(Status.FAILED if written else Status.CANCELLED)

    def _transient(self, row: QueueRow, cause: str, retry_after: float | None) -> Step:
        attempts = row.attempts + 1
        limit = self.settings.transfer_max_attempts
        if attempts >= limit:
            return self._fail(row, f"{cause} (gave up after {attempts} attempts): retry later")
        self.rows.save(row, attempts=attempts)
        delay = retry_after
        if delay is None:
            delay = backoff_delay(
                attempts,
                self.settings.transfer_retry_base_seconds,
                self.settings.transfer_retry_max_seconds,
            )
        log.info("transfer %s: %s; attempt %d of %d", row.id, cause, attempts + 1, limit)
        return Wait(
            min(delay, self.settings.transfer_retry_max_seconds),
            f"{cause}: trying again (attempt {attempts + 1} of {limit})",
        )

    def _video_gone(self, row: QueueRow) -> Step:
        try:
            new_generation(self.rows, row, "Loom no longer had the video", self.settings)
        except RowFailed as exc:
            return self._fail(row, exc.message)
        return Wait(0.0, "Loom lost the video: making it again")

    def _defer(self, row: QueueRow, wait: Wait) -> Step:
        """Record the wait on the row and end the run; the dispatcher sends it when due."""
        written = self.rows.save_unless_cancelled(
            row,
            next_attempt_at=now_iso(wait.seconds),
            wait_reason=wait.reason[:500],
            state=self._closed(row),
        )
        if not written:
            self._discard_video(row)
            return Done(Status.CANCELLED)
        log.info("transfer %s waits %.1fs: %s", row.id, wait.seconds, wait.reason)
        return wait

    # -- keys and clean-up -------------------------------------------------------------------

    def _key(self, row: QueueRow, provider: Provider) -> str:
        try:
            key = self.ports.keys.read(row.user_id, provider)
        except UndecryptableKey as exc:
            raise RowFailed(
                f"Your stored {provider} key cannot be decrypted ({exc.reason}): store it again,"
                " then retry"
            ) from exc
        if not key:
            raise RowFailed(f"No {provider} API key is stored: add your {provider} key, then retry")
        return key

    def _discard_video(self, row: QueueRow) -> None:
        """A cancelled row's unfinished Loom video is deleted; a finished one is kept."""
        if not row.loom_video_id:
            return
        try:
            loom_key = self._key(row, "Loom")
            with secret_scope(loom_key):
                self._delete_unfinished(self.ports.providers.loom(loom_key), row.loom_video_id)
        except Fathom2LoomError as exc:
            log.warning("transfer %s cancelled: could not delete its Loom video: %s", row.id, exc)

    def _delete_unfinished(self, loom: LoomClient, video_id: str) -> None:
        try:
            if loom.get_video(video_id).status == "ready":
                return  # Whole, and perhaps another row's result too: leave it.
        except VideoGone:
            return
        loom.delete_video(video_id)
        log.info("deleted unfinished Loom video %s", video_id)


def _recording_id(row: QueueRow) -> int:
    try:
        return int(canonical_meeting_id(row.meeting_id))
    except InvalidMeetingId as exc:
        raise RowFailed(f"This row's {exc}: queue the meeting again by its id") from exc


def _unexpected(exc: Exception) -> str:
    return f"Unexpected error in the transfer ({type(exc).__name__}; details in the logs)"

"""One run of a transfer: take a queue row as far as it can go, and say what comes next.

The run lives here, free of Celery, and its rules in `rules.py`, free of I/O. The caller (the
Celery task in `tasks/transfer.py`, or a test) passes in the row store, the key store and the
provider clients (`ports.py`), holds the row's lease, and gets back a `Step`: `Done` with an
outcome, or `Wait` with how long and why. A wait longer than `TRANSFER_INLINE_WAIT_SECONDS` is
recorded on the row (`next_attempt_at`, `wait_reason`) and ends the run, so no worker slot sits
idle while Fathom renders or Loom processes; the dispatcher sends the row again when it is due.

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
from datetime import UTC, datetime
from typing import TypeVar

from fathom2loom.api_keys import Provider
from fathom2loom.errors import (
    CoordinationUnavailable,
    DownloadGone,
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
from fathom2loom.pocketbase.dates import parse_date
from fathom2loom.providers.fathom_models import DownloadFile
from fathom2loom.providers.loom import LoomVideo
from fathom2loom.providers.tus import UploadStopped
from fathom2loom.queue_rows import FINAL, QueueRow, Status
from fathom2loom.redact import secret_scope
from fathom2loom.retry import backoff_delay
from fathom2loom.settings import Settings
from fathom2loom.transfer import rules
from fathom2loom.transfer.meeting_notes import meeting_notes
from fathom2loom.transfer.ports import FathomPort, KeyPort, LoomPort, ProviderPorts, RowPort
from fathom2loom.transfer.progress import Progress
from fathom2loom.transfer.rules import MAX_EXCUSED_OUTAGES, Changes, Decision
from fathom2loom.transfer.steps import Done, RowFailed, Step, Wait

__all__ = ["MAX_EXCUSED_OUTAGES", "RunControl", "TransferPorts", "run_transfer"]

log = logging.getLogger("fathom2loom.transfer")
UPLOADABLE = ("awaiting_upload", "uploading")
HANDED_BACK = "handed back by a worker that shut down: another worker continues"
TIME_LIMIT = "The transfer ran longer than TRANSFER_TIME_LIMIT_SECONDS allows"
ActionT = TypeVar("ActionT")


@dataclass
class TransferPorts:
    """What a transfer needs from outside; all of it passed in, none of it built here: the real
    `QueueStore`, `KeyStore` and `Providers`, or the in-memory fakes of `tests/fakes.py`."""

    rows: RowPort
    keys: KeyPort
    providers: ProviderPorts
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


def _now() -> datetime:
    return datetime.now(UTC)


class _Run:
    def __init__(self, row_id: str, ports: TransferPorts, control: RunControl) -> None:
        self.row_id = row_id
        self.rows = ports.rows
        self.ports = ports
        self.settings = ports.settings
        self.control = control

    # -- the one place rows are written ---------------------------------------------------------

    def _save(self, row: QueueRow, changes: Changes) -> None:
        if changes:
            self.rows.save(row, **changes)

    def _save_unless_cancelled(self, row: QueueRow, changes: Changes) -> bool:
        return self.rows.save_unless_cancelled(row, **changes)

    def _settle(self, row: QueueRow, decision: Decision[ActionT]) -> ActionT:
        """Save what the rule says to save, then hand back what it says to do."""
        self._save(row, decision.changes)
        return decision.action

    def _cancelled(self, row: QueueRow) -> bool:
        return self.rows.status(row.id) in (None, Status.CANCELLED)

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
        if begun is not None:
            return begun
        try:
            return self._loop(row)
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

    def _begin(self, row: QueueRow, excused: bool) -> Step | None:
        """Mark the row as being worked on; None when the run may go on."""
        if row.status == Status.PENDING:
            if not self._save_unless_cancelled(row, rules.start(row, _now())):
                return Done(Status.CANCELLED)
            self.control.left_the_line()
            return None
        try:
            changes = rules.resume(row, excused, self.settings)
        except RowFailed as exc:
            return self._fail(row, exc.message)
        if changes["attempts"] > row.attempts:
            log.warning("row %s: its previous run stopped without finishing", row.id)
        elif changes["state"].outage_runs > row.state.outage_runs:
            log.info("row %s: its previous run was stopped by an outage; not counted", row.id)
        return None if self._save_unless_cancelled(row, changes) else Done(Status.CANCELLED)

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
            video = self._kept_video(loom, row)
            if video is None or video.status in UPLOADABLE:
                got = self._fathom_file(fathom, row, recording)
                if isinstance(got, Wait):
                    return got
                with secret_scope(got.url):
                    if video is None:
                        video = self._create_video(fathom, loom, row, recording, got)
                    if video.status in UPLOADABLE:
                        stopped = self._upload(fathom, loom, row, video, got)
                        if stopped is not None:
                            return stopped
                        video = loom.get_video(video.id)
            outcome = self._settle(row, rules.video_outcome(row, video, self.settings))
            return (
                self._complete(row, outcome.video)
                if isinstance(outcome, rules.Complete)
                else outcome
            )

    def _fathom_file(
        self, fathom: FathomPort, row: QueueRow, recording: int
    ) -> DownloadFile | Wait:
        """The file to stream, or how long to wait for Fathom's render."""
        seen = None
        if row.fathom_download_id:
            try:
                seen = fathom.download_status(recording, row.fathom_download_id)
            except DownloadGone:
                seen = None
        kept = rules.kept_download(row, seen, self.settings, _now())
        if isinstance(kept, rules.AskForDownload):
            if kept.why:
                log.info("download for recording %s is gone: %s", recording, kept.why)
            fresh = fathom.request_download(recording)
            kept = rules.new_download(row, kept, fresh, self.settings, _now())
        got = self._settle(row, kept)
        return got.file if isinstance(got, rules.UseFile) else got

    def _kept_video(self, loom: LoomPort, row: QueueRow) -> LoomVideo | None:
        """The row's video if it can still be used; None when one has to be made."""
        seen = None
        if row.loom_video_id:
            try:
                seen = loom.get_video(row.loom_video_id)
            except VideoGone:
                seen = None
        kept = self._settle(row, rules.kept_video(row, seen, self.settings))
        return kept.video if isinstance(kept, rules.UseVideo) else None

    def _create_video(
        self,
        fathom: FathomPort,
        loom: LoomPort,
        row: QueueRow,
        recording: int,
        file: DownloadFile,
    ) -> LoomVideo:
        """Create the row's video (or get back the one its key made before) and keep its id."""
        notes = meeting_notes(fathom, recording, parse_date(row.recorded_at))
        while True:  # Bounded: each new generation is counted, and fails the row at its limit.
            video = loom.create_video(
                title=notes.title,
                description=notes.description,
                size_bytes=file.file_size_bytes,
                content_type=file.content_type,
                idempotency_key=rules.idempotency_key(
                    row.user_id, recording, row.state.loom_generation
                ),
            )
            made = self._settle(row, rules.created_video(row, video, self.settings))
            if isinstance(made, rules.UseVideo):
                return made.video

    def _upload(
        self,
        fathom: FathomPort,
        loom: LoomPort,
        row: QueueRow,
        video: LoomVideo,
        file: DownloadFile,
    ) -> Step | None:
        """Stream the file into the video; a step when the upload could not run to its end."""
        progress = Progress(
            lambda changes: self._save(row, changes),
            lambda: self._cancelled(row),
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
            self._save(row, {"fathom_download_id": ""})
            return Wait(0.0, exc.user_message)
        return None

    # -- outcomes ------------------------------------------------------------------------------

    def _complete(self, row: QueueRow, video: LoomVideo) -> Step:
        if not self._save_unless_cancelled(row, rules.completion(row, video, _now())):
            return Done(Status.CANCELLED)  # Cancelled at the last moment: the video stays whole.
        log.info("transfer %s completed: Loom video %s", row.id, video.id)
        return Done(Status.COMPLETED, video.id)

    def _fail(self, row: QueueRow, message: str) -> Done:
        written = self._save_unless_cancelled(row, rules.failure(row, message, _now()))
        log.warning("transfer %s failed: %s", row.id, message)
        return Done(Status.FAILED if written else Status.CANCELLED)

    def _transient(self, row: QueueRow, cause: str, retry_after: float | None) -> Step:
        try:
            wait = self._settle(row, rules.retry_later(row, cause, retry_after, self.settings))
        except RowFailed as exc:
            return self._fail(row, exc.message)
        log.info("transfer %s: %s", row.id, wait.reason)
        return wait

    def _video_gone(self, row: QueueRow) -> Step:
        try:
            self._save(row, rules.video_gone(row, "Loom no longer had the video", self.settings))
        except RowFailed as exc:
            return self._fail(row, exc.message)
        return Wait(0.0, "Loom lost the video: making it again")

    def _defer(self, row: QueueRow, wait: Wait) -> Step:
        """Record the wait on the row and end the run; the dispatcher sends it when due."""
        if not self._save_unless_cancelled(row, rules.deferral(row, wait, _now())):
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

    def _delete_unfinished(self, loom: LoomPort, video_id: str) -> None:
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

"""The worker task that moves one queue row's recording from Fathom to Loom.

One run of the task takes the row's lease and goes as far as it can without waiting: it asks
Fathom for the file (or polls the render it asked for before), creates the Loom video (idempotent
per row), streams the bytes across with tus, and finishes the row. Whenever a step must wait
(Fathom rendering, Loom processing, a rate limit, a transient fault) the task hands the wait back
to Celery with `retry(countdown=...)` and frees its worker slot. Everything a later run needs to
resume is on the row: the Fathom download id and the Loom video id; the upload offset is on the
tus server.

Only the row id travels in the Celery message; keys are read and decrypted here, in memory.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

import redis
from celery import Task
from celery.exceptions import Retry

from fathom2loom.errors import (
    LinkExpired,
    PermanentProviderError,
    PocketBaseError,
    TransientProviderError,
)
from fathom2loom.inflight import InFlight
from fathom2loom.keybox import Field, UndecryptableKey
from fathom2loom.lease import Lease
from fathom2loom.pocketbase.client import Record
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.providers.fathom import DownloadFile, FathomClient, RenderPending
from fathom2loom.providers.loom import LoomClient, LoomProcessing, LoomVideo
from fathom2loom.providers.tus import UploadStopped
from fathom2loom.queue_state import FINAL_STATUSES, QueueRows, now_iso
from fathom2loom.redact import secret_scope
from tasks.celery_app import app
from tasks.context import WorkerContext, get_context

__all__ = ["RowFailed", "transfer"]

log = logging.getLogger(__name__)
CANCEL_CHECK_SECONDS = 1.0


class RowFailed(Exception):
    """The row cannot be transferred; `message` is what the user reads in `error_message`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Progress:
    """Throttled progress: the row and Celery's task state (shown by Flower)."""

    run: Transfer
    total: int
    last_write: float = 0.0
    last_check: float = 0.0
    stopped_by: str | None = field(default=None)

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last_write < self.run.settings.transfer_progress_interval_seconds and (
            done < self.total
        ):
            return
        self.last_write = now
        self.run.rows.save(self.run.row_id, bytes_done=done, bytes_total=self.total)
        self.run.task.update_state(
            state="PROGRESS",
            meta={"row_id": self.run.row_id, "bytes_done": done, "bytes_total": self.total},
        )

    def should_stop(self) -> bool:
        """Checked before every chunk: a cancel or a lost lease stops the upload."""
        if self.run.lease.lost.is_set():
            self.stopped_by = "lease"
            return True
        now = time.monotonic()
        if now - self.last_check >= CANCEL_CHECK_SECONDS:
            self.last_check = now
            if self.run.rows.status(self.run.row_id) in (None, "cancelled"):
                self.stopped_by = "cancel"
                return True
        return False


class Transfer:
    """One run of the task for one row, holding the row's lease."""

    def __init__(self, task: Task[Any, Any], ctx: WorkerContext, row_id: str, lease: Lease):
        self.task = task
        self.ctx = ctx
        self.settings = ctx.settings
        self.rows = QueueRows(ctx.pb)
        self.row_id = row_id
        self.lease = lease
        self.log = logging.LoggerAdapter(log, {"component": "transfer", "row_id": row_id})

    # -- outcomes ----------------------------------------------------------------------------

    def outcome(self, status: str, **details: Any) -> dict[str, Any]:
        """The task's result: ids and a status, never a key or a URL."""
        return {"row_id": self.row_id, "status": status, **details}

    def retry(self, countdown: float, reason: str) -> NoReturn:
        self.log.info("transfer %s waits %.1fs: %s", self.row_id, countdown, reason)
        raise self.task.retry(countdown=max(countdown, 0.0), max_retries=None)

    def fail(self, message: str) -> dict[str, Any]:
        written = self.rows.set_unless_cancelled(
            self.row_id, status="failed", error_message=message[:2000], completed_at=now_iso()
        )
        self.log.warning("transfer %s failed: %s", self.row_id, message)
        return self.outcome("failed" if written else "cancelled")

    def transient(self, row: Record, error: TransientProviderError | PocketBaseError) -> NoReturn:
        cause = getattr(error, "user_message", None) or str(error)
        attempts = int(row.get("attempts") or 0) + 1
        if attempts >= self.settings.transfer_max_attempts:
            raise RowFailed(f"{cause} (gave up after {attempts} attempts): retry later")
        self.rows.save(self.row_id, attempts=attempts, error_message=f"{cause}: will retry")
        hint = getattr(error, "retry_after", None)
        base = self.settings.transfer_retry_base_seconds * 2 ** (attempts - 1)
        backoff = min(self.settings.transfer_retry_max_seconds, base)
        self.retry(hint if hint is not None else random.uniform(backoff / 2, backoff), cause)

    # -- the steps ---------------------------------------------------------------------------

    def api_key(self, user_id: str, name: str, field_name: Field) -> str:
        keys = self.ctx.pb.first("api_keys", filter=pb_filter("user_id = {:u}", u=user_id))
        token = (keys or {}).get(field_name) or ""
        if not token:
            raise RowFailed(f"No {name} API key is stored: add your {name} key, then retry")
        try:
            return self.ctx.keybox.decrypt(token, user_id=user_id, field=field_name)
        except UndecryptableKey as exc:
            raise RowFailed(
                f"Your stored {name} key cannot be decrypted ({exc.reason}): store it again,"
                " then retry"
            ) from None

    def recording_id(self, row: Record) -> int:
        raw = str(row.get("meeting_id") or "").strip()
        if not raw.isdigit() or len(raw) > 18:
            raise RowFailed(
                f"meeting_id {raw[:40]!r} is not a Fathom recording id (a whole number):"
                " check the meeting"
            )
        return int(raw)

    def fathom_file(self, fathom: FathomClient, row: Record, recording: int) -> DownloadFile:
        download_id = row.get("fathom_download_id") or None
        try:
            download, file = fathom.poll_download(
                recording, download_id, attempt=self.task.request.retries + 1
            )
        except RenderPending as pending:
            if pending.download.download_id != download_id:
                self.rows.save(self.row_id, fathom_download_id=pending.download.download_id)
            started = _parse_date(row.get("started_at")) or datetime.now(UTC)
            waited = (datetime.now(UTC) - started).total_seconds()
            if waited > self.settings.transfer_render_timeout_seconds:
                raise RowFailed(
                    "Fathom took too long to prepare the video: try again later"
                ) from None
            self.retry(pending.retry_after or 5.0, "Fathom is rendering")
        if download.download_id != download_id or not row.get("bytes_total"):
            self.rows.save(
                self.row_id,
                fathom_download_id=download.download_id,
                bytes_total=file.file_size_bytes,
            )
        return file

    def loom_video(
        self,
        fathom: FathomClient,
        loom: LoomClient,
        row: Record,
        recording: int,
        file: DownloadFile,
    ) -> LoomVideo:
        title = f"Fathom recording {recording}"
        if not row.get("loom_video_id"):
            # A nicer title when the meeting is among the newest; not worth a long walk.
            with contextlib.suppress(PermanentProviderError):
                title = fathom.find_meeting(recording, max_pages=2).title or title
        video = loom.create_video(
            title=title[:200],
            description=f"Moved from Fathom by fathom2loom (recording {recording}).",
            size_bytes=file.file_size_bytes,
            content_type=file.content_type,
            idempotency_key=f"fathom2loom-queue-{self.row_id}",
        )
        if video.id != row.get("loom_video_id"):
            self.rows.save(self.row_id, loom_video_id=video.id)
        return video

    def discard_video(self, row: Record) -> None:
        """Delete the unfinished Loom video of a cancelled row, if it made one."""
        video_id = row.get("loom_video_id")
        if not video_id:
            return
        try:
            loom_key = self.api_key(row["user_id"], "Loom", "encrypted_loom")
            self.ctx.providers.loom(loom_key).delete_video(video_id)
            self.log.info("transfer %s cancelled: deleted Loom video %s", self.row_id, video_id)
        except (RowFailed, PermanentProviderError, TransientProviderError) as exc:
            self.log.warning(
                "transfer %s cancelled: could not delete Loom video: %s", self.row_id, exc
            )

    def move(self, row: Record) -> dict[str, Any]:
        recording = self.recording_id(row)
        user_id = str(row["user_id"])
        fathom_key = self.api_key(user_id, "Fathom", "encrypted_fathom")
        loom_key = self.api_key(user_id, "Loom", "encrypted_loom")
        # The keys, then the signed URL, are masked in any log line wherever they turn up.
        with secret_scope(fathom_key, loom_key):
            fathom = self.ctx.providers.fathom(fathom_key)
            loom = self.ctx.providers.loom(loom_key)
            file = self.fathom_file(fathom, row, recording)
            with secret_scope(file.url):
                return self.upload_and_finish(fathom, loom, row, recording, file)

    def upload_and_finish(
        self,
        fathom: FathomClient,
        loom: LoomClient,
        row: Record,
        recording: int,
        file: DownloadFile,
    ) -> dict[str, Any]:
        video = self.loom_video(fathom, loom, row, recording, file)
        if video.status in ("awaiting_upload", "uploading"):
            progress = Progress(self, file.file_size_bytes)
            try:
                loom.upload(
                    video,
                    lambda offset: fathom.stream(file, start=offset),
                    on_progress=progress,
                    should_stop=progress.should_stop,
                )
            except UploadStopped:
                if progress.stopped_by == "cancel":
                    loom.delete_video(video.id)
                    self.log.info("transfer %s cancelled mid-upload", self.row_id)
                    return self.outcome("cancelled")
                return self.outcome("lease lost")
        try:
            ready = loom.poll_ready(video.id, attempt=self.task.request.retries + 1)
        except LoomProcessing as processing:
            self.retry(processing.retry_after or 2.0, "Loom is processing")
        finished = self.rows.set_unless_cancelled(
            self.row_id,
            status="completed",
            completed_at=now_iso(),
            loom_video_id=ready.id,
            loom_url=ready.share_url,
            bytes_done=file.file_size_bytes,
            bytes_total=file.file_size_bytes,
            error_message="",
        )
        if not finished:
            loom.delete_video(ready.id)
            return self.outcome("cancelled")
        self.log.info("transfer %s completed: Loom video %s", self.row_id, ready.id)
        return self.outcome("completed", loom_video_id=ready.id)

    def run(self) -> dict[str, Any]:
        row = self.rows.get(self.row_id)
        if row is None:
            return self.outcome("gone")
        self.log.extra = {
            **(self.log.extra or {}),
            "user_id": row["user_id"],
            "meeting_id": row.get("meeting_id", ""),
        }
        if row["status"] in FINAL_STATUSES:
            if row["status"] == "cancelled":
                self.discard_video(row)
            return self.outcome(row["status"])
        if row["status"] == "pending":
            if not self.rows.set_unless_cancelled(
                self.row_id,
                status="processing",
                started_at=now_iso(),
                position=0,
                attempts=0,
                error_message="",
            ):
                return self.outcome("cancelled")
            row = self.rows.get(self.row_id) or row
        try:
            return self.move(row)
        except RowFailed as failed:
            return self.fail(failed.message)
        except PermanentProviderError as exc:
            return self.fail(exc.user_message)
        except LinkExpired as exc:
            self.rows.save(self.row_id, fathom_download_id="")
            self.transient(row, exc)
        except (TransientProviderError, PocketBaseError) as exc:
            self.transient(row, exc)


def _parse_date(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T"))


def _countdown(retry: Retry) -> float:
    when = retry.when
    if isinstance(when, datetime):
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return float(when or 0)


@app.task(bind=True, name="fathom2loom.transfer", max_retries=None)
def transfer(self: Task[Any, Any], row_id: str) -> dict[str, Any]:
    """Move one queue row's recording; safe to run twice (the lease and the row decide).

    While this task lives (running, or waiting for a countdown retry) it keeps the row's
    in-flight marker alive, so the dispatcher neither sends it again nor gives up on it.
    """
    ctx = get_context()
    lease = Lease.acquire(ctx.redis, row_id, ctx.settings.transfer_lease_seconds)
    if lease is None:
        # Another run holds the row: it is working, or it died and its lease will run out.
        wait = Lease.remaining(ctx.redis, row_id) + 1.0
        raise self.retry(countdown=wait, max_retries=None)
    inflight = InFlight(ctx.redis)
    alive_for = ctx.settings.transfer_lease_seconds * 3
    inflight.hold(row_id, alive_for)
    lease.keep_alive(on_renew=lambda: inflight.hold(row_id, alive_for))
    try:
        run = Transfer(self, ctx, row_id, lease)
        try:
            result = run.run()
        except RowFailed as failed:
            result = run.fail(failed.message)
        except (PocketBaseError, redis.RedisError) as exc:
            log.warning("transfer %s: storage fault, retrying: %s", row_id, type(exc).__name__)
            raise self.retry(
                countdown=ctx.settings.transfer_retry_base_seconds, max_retries=None
            ) from exc
        if result["status"] != "lease lost":
            inflight.release(row_id)
        return result
    except Retry as retry:
        inflight.hold(row_id, _countdown(retry) + alive_for)
        raise
    finally:
        lease.release()

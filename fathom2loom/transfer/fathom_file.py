"""Getting the recording's file from Fathom: reuse the download the row kept, or ask for a new one.

Fathom renders a download before it can be fetched, which may take minutes to hours, and each
download request is a new render job against a 30-per-minute budget (`provider-apis.md`). So the
row keeps its `fathom_download_id` and polls it; only when Fathom no longer has it (404: another
key made it, Fathom's side was restarted, it is too old), or says it `expired` or `failed`, is a
fresh download requested, a bounded number of times (`TRANSFER_MAX_DOWNLOAD_REQUESTS`).
"""

from __future__ import annotations

import logging

from fathom2loom.errors import DownloadGone
from fathom2loom.pocketbase.dates import now_iso, seconds_until
from fathom2loom.providers.fathom import DownloadFile, FathomClient, RecordingDownload
from fathom2loom.queue_rows import QueueRow, QueueStore
from fathom2loom.retry import backoff_delay
from fathom2loom.settings import Settings
from fathom2loom.transfer.steps import RowFailed, Wait

__all__ = ["fathom_file"]

log = logging.getLogger(__name__)
RENDERING = "Fathom is preparing the video"


def _usable(download: RecordingDownload | None) -> RecordingDownload | None:
    """The download if it can still lead to a file; None when a fresh one is needed."""
    if download is None or download.status in ("expired", "failed"):
        return None
    if download.status == "completed" and download.file is None:
        return None  # Completed without a file: the spec says it cannot be, so start again.
    return download


def _why_gone(download: RecordingDownload | None) -> str:
    if download is None:
        return "Fathom no longer knew the download"
    if download.status == "failed":
        reason = (download.failure_reason or "unknown reason").replace("_", " ")
        return f"Fathom could not prepare the video ({reason})"
    return f"Fathom's download was {download.status} without a file"


def fathom_file(
    fathom: FathomClient, rows: QueueStore, row: QueueRow, recording: int, settings: Settings
) -> DownloadFile | Wait:
    """The file to stream, or how long to wait for Fathom's render. Raises `RowFailed`."""
    state = row.state
    download: RecordingDownload | None = None
    if row.fathom_download_id:
        try:
            download = fathom.download_status(recording, row.fathom_download_id)
        except DownloadGone:
            download = None
        if _usable(download) is None:
            state.last_gone = _why_gone(download)
            log.info("download for recording %s is gone: %s", recording, state.last_gone)
            download = None
    if download is None:
        if state.download_requests >= settings.transfer_max_download_requests:
            raise RowFailed(
                f"{state.last_gone or 'Fathom kept losing the download'}"
                f" ({state.download_requests} downloads requested): try again later"
            )
        download = fathom.request_download(recording)
        state.download_requests += 1
        state.render_polls, state.render_started_at = 0, now_iso()
        rows.save(row, fathom_download_id=download.download_id, state=state)
    if _usable(download) is None:
        state.last_gone = _why_gone(download)
        rows.save(row, fathom_download_id="", state=state)
        delay = backoff_delay(state.download_requests, settings.fathom_poll_initial_seconds, 60)
        return Wait(delay, f"{state.last_gone}: asking again")
    if download.status == "completed" and download.file is not None:
        if row.bytes_total != download.file.file_size_bytes:
            rows.save(row, bytes_total=download.file.file_size_bytes)
        return download.file
    return _render_wait(rows, row, settings)


def _render_wait(rows: QueueStore, row: QueueRow, settings: Settings) -> Wait:
    state = row.state
    waited = -seconds_until(state.render_started_at) if state.render_started_at else 0.0
    if waited > settings.transfer_render_timeout_seconds:
        raise RowFailed(
            f"Fathom took more than {settings.transfer_render_timeout_seconds / 3600:.1f} h"
            " to prepare the video: try again later"
        )
    state.render_polls += 1
    rows.save(row, state=state)
    delay = backoff_delay(
        state.render_polls, settings.fathom_poll_initial_seconds, settings.fathom_poll_max_seconds
    )
    return Wait(delay, RENDERING)

"""Getting the recording's file from Fathom: reuse the download the row kept, or ask for a new one.

Fathom renders a download before it can be fetched, which may take minutes to hours, and each
download request is a new render job against a 30-per-minute budget (`provider-apis.md`). So the
row keeps its `fathom_download_id` and polls it; only when Fathom no longer has it (404: another
key made it, Fathom's side was restarted, it is too old), or says it `expired` or `failed`, is a
fresh download requested, a bounded number of times (`TRANSFER_MAX_DOWNLOAD_REQUESTS`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from fathom2loom.pocketbase.dates import parse_date, pb_date
from fathom2loom.providers.fathom_models import RecordingDownload
from fathom2loom.queue_rows import QueueRow, TransferState
from fathom2loom.retry import backoff_delay
from fathom2loom.settings import Settings
from fathom2loom.transfer.rules.decisions import AskForDownload, Changes, Decision, UseFile
from fathom2loom.transfer.steps import RowFailed, Wait

__all__ = ["RENDERING", "kept_download", "new_download"]

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


def kept_download(
    row: QueueRow, seen: RecordingDownload | None, settings: Settings, now: datetime
) -> Decision[UseFile | Wait] | AskForDownload:
    """The row's kept download, as Fathom now describes it (`seen`: None when the row kept none
    or Fathom no longer knows it): use it, wait for its render, or ask for a fresh one."""
    usable = _usable(seen) if row.fathom_download_id else None
    if usable is not None:
        return _ready_or_rendering(row, replace(row.state), usable, {}, settings, now)
    why = _why_gone(seen) if row.fathom_download_id else ""
    if row.state.download_requests >= settings.transfer_max_download_requests:
        raise RowFailed(
            f"{why or row.state.last_gone or 'Fathom kept losing the download'}"
            f" ({row.state.download_requests} downloads requested): try again later"
        )
    return AskForDownload(why)


def new_download(
    row: QueueRow,
    asked: AskForDownload,
    fresh: RecordingDownload,
    settings: Settings,
    now: datetime,
) -> Decision[UseFile | Wait]:
    """The download Fathom just started: keep its id and begin counting its render."""
    state = replace(
        row.state,
        download_requests=row.state.download_requests + 1,
        render_polls=0,
        render_started_at=pb_date(now),
        last_gone=asked.why or row.state.last_gone,
    )
    usable = _usable(fresh)
    if usable is None:
        state.last_gone = _why_gone(fresh)
        delay = backoff_delay(state.download_requests, settings.fathom_poll_initial_seconds, 60)
        return Decision(
            Wait(delay, f"{state.last_gone}: asking again"),
            {"fathom_download_id": "", "state": state},
        )
    changes = {"fathom_download_id": fresh.download_id}
    return _ready_or_rendering(row, state, usable, changes, settings, now)


def _ready_or_rendering(
    row: QueueRow,
    state: TransferState,
    download: RecordingDownload,
    changes: Changes,
    settings: Settings,
    now: datetime,
) -> Decision[UseFile | Wait]:
    file = download.file
    if download.status == "completed" and file is not None:
        if row.bytes_total != file.file_size_bytes:
            changes["bytes_total"] = file.file_size_bytes
        if state != row.state:
            changes["state"] = state
        return Decision(UseFile(file), changes)
    started = parse_date(state.render_started_at)
    waited = (now - started).total_seconds() if started else 0.0
    if waited > settings.transfer_render_timeout_seconds:
        raise RowFailed(
            f"Fathom took more than {settings.transfer_render_timeout_seconds / 3600:.1f} h"
            " to prepare the video: try again later"
        )
    state.render_polls += 1
    delay = backoff_delay(
        state.render_polls, settings.fathom_poll_initial_seconds, settings.fathom_poll_max_seconds
    )
    return Decision(Wait(delay, RENDERING), {**changes, "state": state})

"""The row's Loom video: one per (user, recording), made again only when Loom lost or failed it.

The idempotency key is derived from the user and the Fathom recording, not from the queue row, so
no path (a retried create, a second row for the same meeting, a duplicate task) makes a second
video of one recording. A new video is made only when the last one is gone (deleted, unknown to
the server) or failed Loom's processing and the user retried: then the key's generation moves on,
a bounded number of times (`TRANSFER_MAX_VIDEO_GENERATIONS`).
"""

from __future__ import annotations

import logging

from fathom2loom.errors import VideoGone
from fathom2loom.providers.fathom import DownloadFile
from fathom2loom.providers.loom import LoomClient, LoomVideo
from fathom2loom.queue_rows import QueueRow, QueueStore
from fathom2loom.settings import Settings
from fathom2loom.transfer.meeting_notes import MeetingNotes
from fathom2loom.transfer.steps import RowFailed

__all__ = ["create_video", "current_video", "idempotency_key", "new_generation"]

log = logging.getLogger(__name__)


def idempotency_key(user_id: str, recording: int, generation: int) -> str:
    key = f"fathom2loom-{user_id}-{recording}"
    return key if generation == 0 else f"{key}-g{generation}"


def new_generation(rows: QueueStore, row: QueueRow, why: str, settings: Settings) -> None:
    """Forget the row's video: the next create makes a new one under the next key."""
    state = row.state
    if state.loom_generation + 1 >= settings.transfer_max_video_generations:
        raise RowFailed(f"{why}, {state.loom_generation + 1} times: try again later")
    log.info("row %s: %s; making a new Loom video", row.id, why)
    state.loom_generation += 1
    state.last_gone, state.check_video = why, False
    rows.save(row, loom_video_id="", state=state)


def current_video(
    loom: LoomClient, rows: QueueStore, row: QueueRow, settings: Settings
) -> LoomVideo | None:
    """The row's video if it can still be used; None when one has to be created."""
    if not row.loom_video_id:
        return None
    try:
        video = loom.get_video(row.loom_video_id)
    except VideoGone:
        new_generation(rows, row, "Loom no longer had the video", settings)
        return None
    if video.status == "failed" and row.state.check_video:
        new_generation(rows, row, "Loom could not process the earlier upload", settings)
        return None
    if row.state.check_video:
        row.state.check_video = False
        rows.save(row, state=row.state)
    return video


def create_video(
    loom: LoomClient,
    rows: QueueStore,
    row: QueueRow,
    recording: int,
    file: DownloadFile,
    notes: MeetingNotes,
    settings: Settings,
) -> LoomVideo:
    """Create the row's video (or get back the one its key made before) and keep its id."""
    while True:
        video = loom.create_video(
            title=notes.title,
            description=notes.description,
            size_bytes=file.file_size_bytes,
            content_type=file.content_type,
            idempotency_key=idempotency_key(row.user_id, recording, row.state.loom_generation),
        )
        if video.status != "failed":
            break
        # An earlier row's video of this recording failed in Loom: this one starts afresh.
        new_generation(rows, row, "Loom could not process an earlier upload", settings)
    rows.save(row, loom_video_id=video.id, state=row.state)
    return video

"""The row's Loom video: one per (user, recording), made again only when Loom lost or failed it.

The idempotency key is derived from the user and the Fathom recording, not from the queue row, so
no path (a retried create, a second row for the same meeting, a duplicate task) makes a second
video of one recording. A new video is made only when the last one is gone (deleted, unknown to
the server) or failed Loom's processing and the user retried: then the key's generation moves on,
a bounded number of times (`TRANSFER_MAX_VIDEO_GENERATIONS`).
"""

from __future__ import annotations

from dataclasses import replace

from fathom2loom.providers.loom import LoomVideo
from fathom2loom.queue_rows import QueueRow
from fathom2loom.retry import backoff_delay
from fathom2loom.settings import Settings
from fathom2loom.transfer.rules.decisions import Changes, Complete, Decision, MakeVideo, UseVideo
from fathom2loom.transfer.steps import RowFailed, Wait

__all__ = [
    "LOOM_PROCESSING",
    "created_video",
    "idempotency_key",
    "kept_video",
    "video_gone",
    "video_outcome",
]

LOOM_PROCESSING = "Loom is processing the video"


def idempotency_key(user_id: str, recording: int, generation: int) -> str:
    key = f"fathom2loom-{user_id}-{recording}"
    return key if generation == 0 else f"{key}-g{generation}"


def video_gone(row: QueueRow, why: str, settings: Settings) -> Changes:
    """Forget the row's video: the next create makes a new one under the next key."""
    generation = row.state.loom_generation + 1
    if generation >= settings.transfer_max_video_generations:
        raise RowFailed(f"{why}, {generation} times: try again later")
    state = replace(row.state, loom_generation=generation, last_gone=why, check_video=False)
    return {"loom_video_id": "", "state": state}


def kept_video(
    row: QueueRow, seen: LoomVideo | None, settings: Settings
) -> Decision[UseVideo | MakeVideo]:
    """The row's kept video, as Loom now describes it (`seen`: None when the row kept none or
    Loom no longer has it): use it, or make one."""
    if not row.loom_video_id:
        return Decision(MakeVideo())
    if seen is None:
        return Decision(MakeVideo(), video_gone(row, "Loom no longer had the video", settings))
    if seen.status == "failed" and row.state.check_video:
        why = "Loom could not process the earlier upload"
        return Decision(MakeVideo(), video_gone(row, why, settings))
    if row.state.check_video:
        return Decision(UseVideo(seen), {"state": replace(row.state, check_video=False)})
    return Decision(UseVideo(seen))


def created_video(
    row: QueueRow, video: LoomVideo, settings: Settings
) -> Decision[UseVideo | MakeVideo]:
    """The video Loom made (or gave back) for the row's key: keep it, or make another when an
    earlier row's video of this recording under this key failed in Loom."""
    if video.status == "failed":
        why = "Loom could not process an earlier upload"
        return Decision(MakeVideo(), video_gone(row, why, settings))
    return Decision(UseVideo(video), {"loom_video_id": video.id})


def video_outcome(row: QueueRow, video: LoomVideo, settings: Settings) -> Decision[Complete | Wait]:
    """After the upload: complete the row, or wait for Loom's processing."""
    if video.status == "ready":
        return Decision(Complete(video))
    if video.status == "failed":
        reason = video.failure_reason or "no reason given"
        raise RowFailed(f"Loom could not process the video ({reason}): retry to upload it again")
    state = replace(row.state, loom_polls=row.state.loom_polls + 1)
    delay = backoff_delay(
        state.loom_polls, settings.loom_poll_initial_seconds, settings.loom_poll_max_seconds
    )
    return Decision(Wait(delay, LOOM_PROCESSING), {"state": state})

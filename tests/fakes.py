"""In-memory stand-ins for the transfer's ports (`fathom2loom.transfer.ports`), for the fast tests.

They keep the contract the real stores and clients keep (and the real-server tests check): a row
read is a copy, a write to a deleted row is a 404, a download renders over a number of polls, a
video is one per idempotency key, an upload resumes from the bytes Loom already holds. Faults are
queued per method (`fail_next`) and raised by the next call, as a server would answer them.
"""

from __future__ import annotations

import copy
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fathom2loom.api_keys import Provider
from fathom2loom.errors import (
    DownloadGone,
    KeyRejected,
    PocketBaseNotFound,
    PocketBaseUnavailable,
    RecordingNotFound,
    UndecryptableKey,
    UploadStopped,
    VideoGone,
)
from fathom2loom.pocketbase.dates import now_iso
from fathom2loom.providers.fathom_models import DownloadFile, Meeting, RecordingDownload
from fathom2loom.providers.loom import LoomVideo
from fathom2loom.queue_rows import QueueRow, Status

__all__ = ["FakeFathom", "FakeKeys", "FakeLoom", "FakeProviders", "FakeRows"]


class Faults:
    """Exceptions queued per method name, each raised by one call of the method in turn (a None
    lets its call through)."""

    def __init__(self) -> None:
        self._queued: dict[str, list[BaseException | None]] = defaultdict(list)
        self.calls: list[str] = []

    def fail_next(self, method: str, *errors: BaseException | None) -> None:
        self._queued[method].extend(errors)

    def enter(self, method: str) -> None:
        self.calls.append(method)
        if self._queued[method]:
            error = self._queued[method].pop(0)
            if error is not None:
                raise error

    def count(self, method: str) -> int:
        return self.calls.count(method)


class FakeRows(Faults):
    """The `queue` collection as a dict of rows."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, QueueRow] = {}
        self.down = False  # PocketBase unreachable: every call fails as the real client does
        self._ids = itertools.count(1)

    def add(self, user_id: str, meeting_id: str, **fields: Any) -> str:
        row_id = f"row{next(self._ids)}"
        self.records[row_id] = QueueRow(
            id=row_id,
            user_id=user_id,
            meeting_id=meeting_id,
            status=Status.PENDING,
            queued_at=now_iso(),
            **fields,
        )
        return row_id

    def _enter(self, method: str) -> None:
        if self.down:
            raise PocketBaseUnavailable("PocketBase is unreachable", unreachable=True)
        self.enter(method)

    def get(self, row_id: str) -> QueueRow | None:
        self._enter("get")
        row = self.records.get(row_id)
        return copy.deepcopy(row)

    def status(self, row_id: str) -> Status | None:
        self._enter("status")
        row = self.records.get(row_id)
        return None if row is None else row.status

    def save(self, row: QueueRow, **changes: Any) -> None:
        self._enter("save")
        stored = self.records.get(row.id)
        if stored is None:
            raise PocketBaseNotFound(404, "The requested resource wasn't found.")
        for name, value in changes.items():
            setattr(stored, name, copy.deepcopy(value))
            setattr(row, name, value)

    def save_unless_cancelled(self, row: QueueRow, **changes: Any) -> bool:
        if self.status(row.id) in (None, Status.CANCELLED):
            return False
        self.save(row, **changes)
        return True

    def cancel(self, row_id: str) -> None:
        self.records[row_id].status = Status.CANCELLED

    def make_due(self, row_id: str) -> None:
        """The time a deferred row waits for has passed."""
        self.records[row_id].next_attempt_at = ""


class FakeKeys:
    def __init__(self) -> None:
        self.keys: dict[tuple[str, Provider], str] = {}
        self.damaged: set[tuple[str, Provider]] = set()

    def give(self, user_id: str, fathom: str = "fathom-key", loom: str = "loom-key") -> None:
        self.keys[user_id, "Fathom"], self.keys[user_id, "Loom"] = fathom, loom

    def read(self, user_id: str, provider: Provider) -> str | None:
        if (user_id, provider) in self.damaged:
            raise UndecryptableKey("the key does not match PB_ENCRYPTION_KEY")
        return self.keys.get((user_id, provider))


@dataclass
class _Download:
    recording: int
    polls_left: int
    status: str = "processing"
    failure_reason: str | None = None


class FakeFathom(Faults):
    """Fathom for one key: recordings and their sizes, downloads that render over polls."""

    def __init__(self, render_polls: int = 0) -> None:
        super().__init__()
        self.recordings: dict[int, bytes] = {}
        self.downloads: dict[str, _Download] = {}
        self.render_polls = render_polls
        self.fail_renders: str | None = None  # every new download fails with this reason
        self._ids = itertools.count(1)

    def add(self, recording: int, size: int = 1000) -> bytes:
        data = bytes(i % 251 for i in range(size))
        self.recordings[recording] = data
        return data

    def forget_downloads(self) -> None:
        """Fathom's side restarted: it knows no download any more."""
        self.downloads.clear()

    def _describe(self, download_id: str, download: _Download) -> RecordingDownload:
        file = None
        if download.status == "completed":
            file = DownloadFile(
                url=f"https://files.fathom.test/{download_id}",
                content_type="video/mp4",
                file_size_bytes=len(self.recordings[download.recording]),
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        return RecordingDownload(
            download_id=download_id,
            recording_id=download.recording,
            status=download.status,  # type: ignore[arg-type]
            video=file,
            failure_reason=download.failure_reason,
        )

    def request_download(self, recording_id: int) -> RecordingDownload:
        self.enter("request_download")
        if recording_id not in self.recordings:
            raise RecordingNotFound("Fathom", "Fathom has no such recording for this key")
        download_id = f"dl{next(self._ids)}"
        download = _Download(recording_id, self.render_polls)
        if self.fail_renders is not None:
            download.status, download.failure_reason = "failed", self.fail_renders
        elif download.polls_left == 0:
            download.status = "completed"
        self.downloads[download_id] = download
        return self._describe(download_id, download)

    def download_status(self, recording_id: int, download_id: str) -> RecordingDownload:
        self.enter("download_status")
        download = self.downloads.get(download_id)
        if download is None or download.recording != recording_id:
            raise DownloadGone("Fathom", "Fathom no longer knows this download (404)", status=404)
        if download.status == "processing":
            download.polls_left -= 1
            if download.polls_left <= 0:
                download.status = "completed"
        return self._describe(download_id, download)

    def stream(self, file: DownloadFile, *, start: int = 0) -> Iterator[bytes]:
        self.enter("stream")
        download = self.downloads[file.url.rsplit("/", 1)[1]]
        data = self.recordings[download.recording]
        for offset in range(start, len(data), 256):
            yield data[offset : offset + 256]

    def meeting_pages(self, **filters: Any) -> Iterator[list[Meeting]]:
        self.enter("meeting_pages")
        yield []

    def summary(self, recording_id: int) -> dict[str, Any]:
        self.enter("summary")
        return {"markdown_formatted": ""}


@dataclass
class _Video:
    id: str
    title: str
    size: int
    received: int = 0
    status: str = "awaiting_upload"
    processing_polls: int = 0
    failure_reason: str | None = None


@dataclass
class FakeLoom(Faults):
    """Loom under our contract: one video per idempotency key, resumable uploads."""

    processing_polls: int = 0  # polls a finished upload stays `processing` before `ready`
    fail_processing: str | None = None  # a finished upload fails Loom's processing with this
    stop_after_bytes: int | None = None  # the upload connection drops once this much is in
    before_upload: Callable[[], None] | None = None  # what happens elsewhere as an upload begins
    videos: dict[str, _Video] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        Faults.__init__(self)
        self._ids = itertools.count(1)

    def _describe(self, video: _Video) -> LoomVideo:
        return LoomVideo(
            id=video.id,
            status=video.status,  # type: ignore[arg-type]
            title=video.title,
            size_bytes=video.size,
            received_bytes=video.received,
            upload_endpoint="/tus",
            share_url=f"https://loom.test/share/{video.id}" if video.status == "ready" else None,
            failure_reason=video.failure_reason,
        )

    def create_video(
        self,
        *,
        title: str,
        description: str,
        size_bytes: int,
        content_type: str,
        idempotency_key: str,
    ) -> LoomVideo:
        self.enter("create_video")
        video_id = self.by_key.get(idempotency_key)
        if video_id is None or video_id not in self.videos:
            video_id = f"v{next(self._ids)}"
            self.videos[video_id] = _Video(video_id, title, size_bytes)
            self.by_key[idempotency_key] = video_id
        return self._describe(self.videos[video_id])

    def get_video(self, video_id: str) -> LoomVideo:
        self.enter("get_video")
        video = self.videos.get(video_id)
        if video is None:
            raise VideoGone("Loom", "Loom no longer has the video (404)", status=404)
        if video.status == "processing":
            video.processing_polls -= 1
            if video.processing_polls < 0:
                video.status = "failed" if self.fail_processing else "ready"
                video.failure_reason = self.fail_processing
        return self._describe(video)

    def delete_video(self, video_id: str) -> None:
        self.enter("delete_video")
        if self.videos.pop(video_id, None) is not None:
            self.deleted.append(video_id)

    def upload(
        self,
        video: LoomVideo,
        source: Callable[[int], Iterable[bytes]],
        *,
        on_progress: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.enter("upload")
        held = self.videos.get(video.id)
        if held is None:
            raise VideoGone("Loom", "Loom no longer has the video (404)", status=404)
        held.status = "uploading"
        if self.before_upload is not None:
            self.before_upload()
        for chunk in source(held.received):
            if should_stop is not None and should_stop():
                raise UploadStopped("the caller stopped the upload")
            held.received += len(chunk)
            if on_progress is not None:
                on_progress(held.received)
            if self.stop_after_bytes is not None and held.received >= self.stop_after_bytes:
                self.stop_after_bytes = None
                raise OSError("the upload connection dropped")  # unforeseen by the run
        held.status, held.processing_polls = "processing", self.processing_polls


@dataclass
class FakeProviders:
    """One user's Fathom and Loom, reached with the keys `FakeKeys.give` stores."""

    fathom_api: FakeFathom = field(default_factory=FakeFathom)
    loom_api: FakeLoom = field(default_factory=FakeLoom)
    fathom_key: str = "fathom-key"
    loom_key: str = "loom-key"

    def fathom(self, api_key: str) -> FakeFathom:
        if api_key != self.fathom_key:
            raise KeyRejected("Fathom", "Fathom refused the API key (401): store a new one")
        return self.fathom_api

    def loom(self, api_key: str) -> FakeLoom:
        if api_key != self.loom_key:
            raise KeyRejected("Loom", "Loom refused the API key (401): store a new one")
        return self.loom_api

"""What a transfer needs from outside, as Protocols: the row store, the key store, and the two
providers. `run_transfer` takes any implementation: the real ones (`QueueStore`, `KeyStore`,
`Providers`), or the in-memory fakes of the fast tests (`tests/fakes.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from fathom2loom.api_keys import Provider
from fathom2loom.providers.fathom_models import DownloadFile, Meeting, RecordingDownload
from fathom2loom.providers.loom import LoomVideo
from fathom2loom.queue_rows import QueueRow, Status

__all__ = ["FathomPort", "KeyPort", "LoomPort", "ProviderPorts", "RowPort"]


class RowPort(Protocol):
    def get(self, row_id: str) -> QueueRow | None: ...

    def status(self, row_id: str) -> Status | None: ...

    def save(self, row: QueueRow, **changes: Any) -> None: ...

    def save_unless_cancelled(self, row: QueueRow, **changes: Any) -> bool: ...


class KeyPort(Protocol):
    def read(self, user_id: str, provider: Provider) -> str | None: ...


class FathomPort(Protocol):
    def request_download(self, recording_id: int) -> RecordingDownload: ...

    def download_status(self, recording_id: int, download_id: str) -> RecordingDownload: ...

    def stream(self, file: DownloadFile, *, start: int = 0) -> Iterator[bytes]: ...

    def meeting_pages(self, **filters: Any) -> Iterator[list[Meeting]]: ...

    def summary(self, recording_id: int) -> dict[str, Any]: ...


class LoomPort(Protocol):
    def create_video(
        self,
        *,
        title: str,
        description: str,
        size_bytes: int,
        content_type: str,
        idempotency_key: str,
    ) -> LoomVideo: ...

    def get_video(self, video_id: str) -> LoomVideo: ...

    def delete_video(self, video_id: str) -> None: ...

    def upload(
        self,
        video: LoomVideo,
        source: Callable[[int], Iterable[bytes]],
        *,
        on_progress: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None: ...


class ProviderPorts(Protocol):
    def fathom(self, api_key: str) -> FathomPort: ...

    def loom(self, api_key: str) -> LoomPort: ...

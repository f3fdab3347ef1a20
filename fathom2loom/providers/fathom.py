"""Fathom External API v1 client, as published in Fathom's OpenAPI spec.

Why a thin httpx client and not the official `fathom-python` SDK: the SDK retries 429 inside the
call for up to 300 s (a Celery worker slot held idle), knows nothing of a rate limit shared by
several processes, and raises its own errors. We need few endpoints; here each call takes its
budget from a Redis limiter shared by all workers, waits inside the call only for short delays
(`RetryPolicy.max_sleep`) and otherwise raises a typed error with `retry_after`, so a task can
retry with a countdown instead of sleeping.

The signed file URL is fetched with a second client that never carries the API key, resuming
with `Range` after a cut-off and checking the final size.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from fathom2loom.errors import (
    DownloadFailed,
    LinkExpired,
    RateLimited,
    RecordingNotFound,
    StillRendering,
    TemporaryFault,
)
from fathom2loom.providers.http import RetryPolicy, error_for, send
from fathom2loom.providers.ratelimit import Budget, RateLimiter, key_identity
from fathom2loom.retry import backoff_delay

__all__ = [
    "DownloadFile",
    "FathomClient",
    "FathomLimits",
    "Meeting",
    "RecordingDownload",
    "RenderPending",
]

PROVIDER = "Fathom"
DEFAULT_BASE_URL = "https://api.fathom.ai/external/v1"


class DownloadFile(BaseModel):
    """The `video` or `audio` object of a completed download."""

    url: str
    content_type: str
    file_size_bytes: int
    expires_at: datetime

    def __repr__(self) -> str:  # The URL is a bearer credential: keep it out of reprs and logs.
        return f"DownloadFile(size={self.file_size_bytes}, type={self.content_type!r})"

    __str__ = __repr__


class RecordingDownload(BaseModel):
    download_id: str
    recording_id: int
    status: Literal["processing", "completed", "failed", "expired"]
    video: DownloadFile | None = None
    audio: DownloadFile | None = None
    failure_reason: str | None = None

    @property
    def file(self) -> DownloadFile | None:
        return self.video or self.audio


class RenderPending(StillRendering):
    """Fathom is still rendering; `download` is the pending download to poll again."""

    def __init__(self, download: RecordingDownload, retry_after: float) -> None:
        super().__init__(
            PROVIDER,
            "Fathom is still preparing the video: the transfer will wait",
            retry_after=retry_after,
        )
        self.download = download


class Meeting(BaseModel):
    """A Meeting with the fields we use typed; the rest of Fathom's fields kept as they came."""

    model_config = ConfigDict(extra="allow")

    title: str
    meeting_title: str | None
    recording_id: int
    url: str
    share_url: str
    created_at: datetime
    recording_start_time: datetime
    recording_end_time: datetime

    @property
    def duration_seconds(self) -> float:
        return (self.recording_end_time - self.recording_start_time).total_seconds()


@dataclass(frozen=True)
class FathomLimits:
    """Fathom's documented per-account budgets (all calls; transcript/summary; downloads)."""

    calls: int = 60
    heavy_calls: int = 30
    download_requests: int = 30
    window_seconds: float = 60.0

    def budgets(self, kind: Literal["plain", "heavy", "download"]) -> list[Budget]:
        chosen = [Budget("all", self.calls, self.window_seconds)]
        if kind == "heavy":
            chosen.append(Budget("heavy", self.heavy_calls, self.window_seconds))
        elif kind == "download":
            chosen.append(Budget("download", self.download_requests, self.window_seconds))
        return chosen


class FathomClient:
    """One user's view of Fathom. Share `http`/`storage_http` across users, never the key."""

    def __init__(
        self,
        api_key: str,
        *,
        http: httpx.Client,
        storage_http: httpx.Client,
        base_url: str = DEFAULT_BASE_URL,
        limiter: RateLimiter | None = None,
        limits: FathomLimits | None = None,
        policy: RetryPolicy | None = None,
        chunk_bytes: int = 1024 * 1024,
        poll_initial: float = 5.0,
        poll_max: float = 120.0,
    ) -> None:
        self._api_key = api_key
        self._identity = key_identity(api_key)
        self._http = http
        self._storage = storage_http
        self.base_url = base_url.rstrip("/")
        self._limiter = limiter
        self._limits = limits or FathomLimits()
        self.policy = policy or RetryPolicy()
        self.chunk_bytes = chunk_bytes
        self.poll_initial = poll_initial
        self.poll_max = poll_max

    def __repr__(self) -> str:
        return f"FathomClient(key={self._identity[:8]}…, base_url={self.base_url!r})"

    # -- API calls ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        kind: Literal["plain", "heavy", "download"] = "plain",
        messages: dict[int, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        budgets = self._limits.budgets(kind)

        def take_budget() -> None:
            if self._limiter is not None:
                self._limiter.take(
                    self._identity, budgets, max_wait=self.policy.max_sleep, provider=PROVIDER
                )

        def share_cooldown(error: RateLimited) -> None:
            if self._limiter is not None:
                self._limiter.cool_down(self._identity, error.retry_after or 1.0)

        response = send(
            self._http,
            PROVIDER,
            method,
            f"{self.base_url}{path}",
            policy=self.policy,
            messages=messages,
            headers={"X-Api-Key": self._api_key, "Accept": "application/json"},
            before_each=take_budget,
            on_rate_limited=share_cooldown,
            **kwargs,
        )
        return response.json()

    def meetings(self, **filters: Any) -> Iterator[Meeting]:
        """Every meeting the key can see, following `next_cursor` to the end.

        Filters are the API's query parameters; list values are sent as repeated `name[]`.
        """
        params: dict[str, Any] = {}
        for name, value in filters.items():
            if isinstance(value, list | tuple):
                params[name if name.endswith("[]") else f"{name}[]"] = list(value)
            elif isinstance(value, bool):
                params[name] = "true" if value else "false"
            elif isinstance(value, datetime):
                params[name] = value.isoformat().replace("+00:00", "Z")
            else:
                params[name] = value
        for items in self._pages(params):
            yield from items

    def _pages(self, params: dict[str, Any]) -> Iterator[list[Meeting]]:
        heavy = (
            params.get("include_transcript") == "true" or params.get("include_summary") == "true"
        )
        while True:
            page = self._call("GET", "/meetings", "heavy" if heavy else "plain", params=params)
            yield [Meeting.model_validate(item) for item in page["items"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return
            params = {**params, "cursor": cursor}

    def find_meeting(self, recording_id: int, *, max_pages: int | None = None) -> Meeting:
        """Fathom has no get-by-id: walk the list, stopping as soon as the meeting turns up.

        `max_pages` bounds the walk (newest meetings come first) for callers that would rather
        do without the meeting than spend a large library's rate budget looking for it.
        """
        for page, items in enumerate(self._pages({}), start=1):
            for meeting in items:
                if meeting.recording_id == recording_id:
                    return meeting
            if max_pages is not None and page >= max_pages:
                break
        raise RecordingNotFound(
            PROVIDER,
            f"Fathom has no recording {recording_id} visible to this key: check the meeting id",
            status=404,
        )

    def transcript(self, recording_id: int) -> list[dict[str, Any]]:
        body = self._call("GET", f"/recordings/{recording_id}/transcript", "heavy")
        return list(body["transcript"])

    def summary(self, recording_id: int) -> dict[str, Any]:
        body = self._call("GET", f"/recordings/{recording_id}/summary", "heavy")
        return dict(body["summary"])

    def _download_messages(self, recording_id: int) -> dict[int, str]:
        return {
            403: f"Fathom does not let this key download recording {recording_id} (403):"
            " ask its owner to share it with you",
            404: f"Fathom has no recording {recording_id} for this key (404): check the meeting id",
            422: f"Fathom has no downloadable media for recording {recording_id} (422)",
        }

    def request_download(self, recording_id: int) -> RecordingDownload:
        body = self._call(
            "POST",
            f"/recordings/{recording_id}/download",
            "download",
            messages=self._download_messages(recording_id),
        )
        return RecordingDownload.model_validate(body)

    def download_status(self, recording_id: int, download_id: str) -> RecordingDownload:
        body = self._call(
            "GET",
            f"/recordings/{recording_id}/downloads/{download_id}",
            messages=self._download_messages(recording_id),
        )
        return RecordingDownload.model_validate(body)

    def poll_download(
        self, recording_id: int, download_id: str | None, *, attempt: int = 1
    ) -> tuple[RecordingDownload, DownloadFile]:
        """One step towards the file: request a download (or a fresh one) or look at one.

        Returns the download and its file when ready. While Fathom renders it raises
        `RenderPending` with `retry_after` and the download to poll, so a Celery task can come
        back later instead of waiting in a worker slot.
        """
        download = (
            self.request_download(recording_id)
            if download_id is None
            else self.download_status(recording_id, download_id)
        )
        if download.status == "expired" or (
            download.status == "completed" and download.file is None
        ):
            download = self.request_download(recording_id)
        if download.status == "failed":
            reason = (download.failure_reason or "unknown reason").replace("_", " ")
            raise DownloadFailed(
                PROVIDER, f"Fathom could not prepare the video ({reason}): try again later"
            )
        if download.status == "completed" and download.file is not None:
            return download, download.file
        raise RenderPending(download, min(self.poll_max, self.poll_initial * 2 ** (attempt - 1)))

    def wait_for_file(
        self, recording_id: int, *, timeout: float
    ) -> tuple[RecordingDownload, DownloadFile]:
        """Blocking form of `poll_download`, for scripts and tests: polls with backoff."""
        deadline = time.monotonic() + timeout
        download_id: str | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.poll_download(recording_id, download_id, attempt=attempt)
            except RenderPending as pending:
                download_id = pending.download.download_id
                delay = pending.retry_after or self.poll_initial
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)

    # -- the file ----------------------------------------------------------------------------

    def stream(
        self, file: DownloadFile, *, start: int = 0, max_resumes: int = 8
    ) -> Iterator[bytes]:
        """The file's bytes from `start`, resuming with `Range` after a cut-off.

        Sends no API key to the storage host. Raises `LinkExpired` when the signed URL has
        expired (request a new download) and `TemporaryFault` when resumes run out or the size
        does not match what Fathom announced.
        """
        total = file.file_size_bytes
        offset = start
        resumes = 0
        while offset < total:
            if file.expires_at <= datetime.now(UTC):
                raise LinkExpired(PROVIDER, "Fathom's download link expired: asking for a new one")
            oversize = False
            try:
                for chunk in self._stream_from(file, offset):
                    if offset + len(chunk) > total:
                        oversize = True
                        break
                    offset += len(chunk)
                    yield chunk
            except (httpx.TransportError, TemporaryFault):
                pass  # Cut off or a passing storage fault: resume from `offset` below.
            if oversize:
                raise TemporaryFault(PROVIDER, "Fathom sent more bytes than announced")
            if offset >= total:
                break
            resumes += 1
            if resumes > max_resumes:
                raise TemporaryFault(
                    PROVIDER,
                    f"Fathom's download kept breaking off ({offset} of {total} bytes)",
                )
            time.sleep(backoff_delay(resumes, 0.2, 5.0))

    def _stream_from(self, file: DownloadFile, offset: int) -> Iterator[bytes]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with self._storage.stream("GET", file.url, headers=headers) as response:
            if response.status_code in (401, 403, 410):
                raise LinkExpired(PROVIDER, "Fathom's download link expired: asking for a new one")
            if response.status_code >= 500 or response.status_code == 429:
                raise TemporaryFault(
                    PROVIDER, f"Fathom's file storage failed ({response.status_code})"
                )
            if response.status_code not in (200, 206):
                raise error_for(PROVIDER, response)
            skip = offset if (offset and response.status_code == 200) else 0
            for chunk in response.iter_bytes(self.chunk_bytes):
                if skip:  # The host ignored Range: drop what we already have.
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                    if not chunk:
                        continue
                yield chunk

"""Fathom External API v1 client, as published in Fathom's OpenAPI spec.

Why a thin httpx client and not the official `fathom-python` SDK: the SDK retries 429 inside the
call for up to 300 s (a worker slot held idle), knows nothing of a rate limit shared by several
processes, and raises its own errors. We need few endpoints; here each call takes its budget from
a Redis limiter shared by all workers, waits inside the call only for short delays
(`RetryPolicy.max_sleep`) and otherwise raises a typed error with `retry_after`, so a transfer can
record the wait on its row instead of sleeping.

Every response is checked against the spec's shapes: anything else (not JSON, a missing field, a
download for another recording) is a `ProtocolError`, never a library exception. What to do with
a download (reuse, poll, ask for a fresh one) is the transfer's decision
(`fathom2loom.transfer.fathom_file`); this client only says what Fathom said.

The signed file URL is fetched with a second client that never carries the API key, resuming
with `Range` after a cut-off and checking the final size.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from fathom2loom.errors import (
    CoordinationUnavailable,
    DownloadGone,
    LinkExpired,
    ProtocolError,
    ProviderError,
    RateLimited,
    RecordingNotFound,
    StillWorking,
    TemporaryFault,
)
from fathom2loom.providers.http import Kinds, RetryPolicy, error_for, parse, read_json, send
from fathom2loom.providers.ratelimit import Budget, RateLimiter, key_identity
from fathom2loom.retry import backoff_delay

__all__ = [
    "DownloadFile",
    "FathomClient",
    "FathomLimits",
    "Meeting",
    "MeetingsPage",
    "RecordingDownload",
    "Webhook",
]

PROVIDER = "Fathom"
DEFAULT_BASE_URL = "https://api.fathom.ai/external/v1"


class DownloadFile(BaseModel):
    """The `video` or `audio` object of a completed download."""

    url: str = Field(pattern=r"^https?://")
    content_type: str
    file_size_bytes: int = Field(gt=0)
    expires_at: datetime

    def __repr__(self) -> str:  # The URL is a bearer credential: keep it out of reprs and logs.
        return f"DownloadFile(size={self.file_size_bytes}, type={self.content_type!r})"

    __str__ = __repr__


class RecordingDownload(BaseModel):
    download_id: str = Field(min_length=1, max_length=128)
    recording_id: int
    status: Literal["processing", "completed", "failed", "expired"]
    video: DownloadFile | None = None
    audio: DownloadFile | None = None
    failure_reason: str | None = None

    @property
    def file(self) -> DownloadFile | None:
        return self.video or self.audio


class Meeting(BaseModel):
    """A Meeting with the fields we use typed; the rest of Fathom's fields kept as they came."""

    model_config = ConfigDict(extra="allow")

    title: str
    meeting_title: str | None
    recording_id: int = Field(ge=0, lt=10**18)  # stored as text: fathom2loom.meeting_ids
    url: str
    share_url: str
    created_at: datetime
    recording_start_time: datetime
    recording_end_time: datetime
    recorded_by: dict[str, Any] | None = None  # {name, email, ...}: whose recording it is
    action_items: list[Any] | None = None  # present with include_action_items=true

    @field_validator("created_at", "recording_start_time", "recording_end_time")
    @classmethod
    def _utc_when_unzoned(cls, value: datetime) -> datetime:
        """The spec's date-times carry an offset; one without is read as UTC, never compared
        naive against aware times (a TypeError deep in a poll)."""
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @property
    def duration_seconds(self) -> float:
        return (self.recording_end_time - self.recording_start_time).total_seconds()

    @property
    def recorder_email(self) -> str | None:
        email = (self.recorded_by or {}).get("email")
        return email.strip() if isinstance(email, str) and email.strip() else None


class MeetingsPage(BaseModel):
    """`GET /meetings`: all three keys are always present; `next_cursor` is null on the last."""

    limit: int | None
    next_cursor: str | None
    items: list[Meeting]


class Webhook(BaseModel):
    """`POST /webhooks`' answer. The spec has more fields, all kept; only these two are needed,
    and a webhook Fathom made is never left behind unknown because another one was missing."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=128)
    secret: SecretStr  # whsec_…: signs every delivery; never logged, never shown


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
        poll_initial: float = 5.0,
        poll_max: float = 120.0,
        identity: str | None = None,
    ) -> None:
        self._api_key = api_key
        self._identity = identity or key_identity(api_key)
        self._http = http
        self._storage = storage_http
        self.base_url = base_url.rstrip("/")
        self._limiter = limiter
        self._limits = limits or FathomLimits()
        self.policy = policy or RetryPolicy()
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
        kinds: Kinds | None = None,
        what: str = "a response",
        expect_body: bool = True,
        once: bool = False,
        **kwargs: Any,
    ) -> Any:
        budgets = self._limits.budgets(kind)
        policy = replace(self.policy, attempts=1) if once else self.policy

        def take_budget() -> None:
            if self._limiter is not None:
                self._limiter.take(
                    self._identity, budgets, max_wait=self.policy.max_sleep, provider=PROVIDER
                )

        def share_cooldown(error: RateLimited) -> None:
            if self._limiter is not None:
                # Redis away: others do not hear of this 429; this call still backs off.
                with contextlib.suppress(CoordinationUnavailable):
                    self._limiter.cool_down(self._identity, error.retry_after or 1.0)

        response = send(
            self._http,
            PROVIDER,
            method,
            f"{self.base_url}{path}",
            policy=policy,
            messages=messages,
            retry_transport=not once,
            kinds=kinds,
            headers={"X-Api-Key": self._api_key, "Accept": "application/json"},
            before_each=take_budget,
            on_rate_limited=share_cooldown,
            **kwargs,
        )
        if expect_body:
            return read_json(response, PROVIDER, what)
        if response.status_code != 204 and response.content.strip():
            # The spec answers 204: a page with a body is a proxy's, and the outcome unknown.
            raise ProtocolError(
                PROVIDER, f"Fathom answered {what} with {response.status_code} and a body, not 204"
            )
        return None

    def meetings(self, **filters: Any) -> Iterator[Meeting]:
        """Every meeting the key can see, newest first, following `next_cursor` to the end.

        Filters are the API's query parameters; list values are sent as repeated `name[]`.
        """
        for items in self.meeting_pages(**filters):
            yield from items

    def meeting_pages(self, **filters: Any) -> Iterator[list[Meeting]]:
        """The same, a page (one request) at a time."""
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
        return self._pages(params)

    def _pages(self, params: dict[str, Any]) -> Iterator[list[Meeting]]:
        heavy = (
            params.get("include_transcript") == "true" or params.get("include_summary") == "true"
        )
        while True:
            body = self._call(
                "GET",
                "/meetings",
                "heavy" if heavy else "plain",
                what="a meetings page",
                params=params,
            )
            page = parse(MeetingsPage, body, PROVIDER, "a meetings page")
            yield page.items
            if not page.next_cursor:
                return
            params = {**params, "cursor": page.next_cursor}

    def check_key(self) -> int:
        """One plain call that says whether the key works: the first page of meetings.

        Returns how many meetings that page holds; `KeyRejected` when the key is refused.
        """
        return len(next(self._pages({}), []))

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

    # -- webhooks ------------------------------------------------------------------------------

    def create_webhook(self, destination_url: str) -> Webhook:
        """A webhook for the key owner's own new recordings, delivered to `destination_url`.

        The payload is the Meeting without transcript or summary (action items only: the spec
        asks for at least one `include_*`), so a delivery stays small and holds no conversation.
        """
        body = self._call(
            "POST",
            "/webhooks",
            what="a webhook",
            json={
                "destination_url": destination_url,
                "triggered_for": ["my_recordings"],
                "include_transcript": False,
                "include_summary": False,
                "include_action_items": True,
                "include_crm_matches": False,
            },
            messages={400: "Fathom refused the webhook (400): check WEBHOOK_PUBLIC_URL"},
            once=True,  # A POST that timed out or got a 5xx may have made one: never make two.
        )
        try:
            webhook = parse(Webhook, body, PROVIDER, "a webhook")
            if not webhook.secret.get_secret_value().startswith("whsec_"):
                raise ProtocolError(PROVIDER, "Fathom sent a webhook secret we cannot use")
        except ProtocolError:
            made = body.get("id") if isinstance(body, dict) else None
            if isinstance(made, str) and made:  # Made at Fathom, but of no use: not left there.
                with contextlib.suppress(ProviderError):
                    self.delete_webhook(made)
            raise
        return webhook

    def delete_webhook(self, webhook_id: str) -> bool:
        """Delete a webhook; False when Fathom no longer has it (nothing left to do)."""
        try:
            self._call(
                "DELETE",
                f"/webhooks/{quote(webhook_id, safe='')}",
                what="a deletion",
                expect_body=False,
            )
        except ProviderError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def transcript(self, recording_id: int) -> list[dict[str, Any]]:
        body = self._call(
            "GET",
            f"/recordings/{recording_id}/transcript",
            "heavy",
            what="a transcript",
            **self._on(recording_id),
        )
        if not isinstance(body, dict) or not isinstance(body.get("transcript"), list):
            raise ProtocolError(PROVIDER, "Fathom sent a transcript we cannot read")
        return list(body["transcript"])

    def summary(self, recording_id: int) -> dict[str, Any]:
        body = self._call(
            "GET",
            f"/recordings/{recording_id}/summary",
            "heavy",
            what="a summary",
            **self._on(recording_id),
        )
        if not isinstance(body, dict) or not isinstance(body.get("summary"), dict):
            raise ProtocolError(PROVIDER, "Fathom sent a summary we cannot read")
        return dict(body["summary"])

    @staticmethod
    def _on(recording_id: int) -> dict[str, Any]:
        """What Fathom's statuses mean on a recording's endpoints."""
        return {
            "messages": {
                403: f"Fathom does not let this key download recording {recording_id} (403):"
                " ask its owner to share it with you",
                404: f"Fathom has no recording {recording_id} for this key (404):"
                " check the meeting id and the Fathom key",
                422: f"Fathom has no downloadable media for recording {recording_id} (422)",
            },
            "kinds": {404: RecordingNotFound},
        }

    def _download(self, body: Any, recording_id: int) -> RecordingDownload:
        download = parse(RecordingDownload, body, PROVIDER, "a download")
        if download.recording_id != recording_id:
            raise ProtocolError(PROVIDER, "Fathom sent a download for another recording")
        return download

    def request_download(self, recording_id: int) -> RecordingDownload:
        """Start a render (not idempotent: each call is a new job against the download budget)."""
        body = self._call(
            "POST",
            f"/recordings/{recording_id}/download",
            "download",
            what="a download",
            **self._on(recording_id),
        )
        return self._download(body, recording_id)

    def download_status(self, recording_id: int, download_id: str) -> RecordingDownload:
        """A download as of now; `DownloadGone` when Fathom no longer knows the id.

        A 404 here means the download, not the recording: it was made by another key (or before
        a restart of Fathom's side) or is too old. The caller asks for a new one.
        """
        gone = "Fathom no longer knows this download (404): asking for a new one"
        body = self._call(
            "GET",
            f"/recordings/{recording_id}/downloads/{quote(download_id, safe='')}",
            messages={**self._on(recording_id)["messages"], 404: gone},
            kinds={404: DownloadGone},
            what="a download's status",
        )
        return self._download(body, recording_id)

    def wait_for_file(
        self, recording_id: int, *, timeout: float
    ) -> tuple[RecordingDownload, DownloadFile]:
        """Request a download and poll it until the file is ready: for scripts and benches.

        Transfers never block like this; they record the wait on the row instead.
        """
        deadline = time.monotonic() + timeout
        download = self.request_download(recording_id)
        polls, requests = 0, 1
        while True:
            if download.status == "completed" and download.file is not None:
                return download, download.file
            if download.status == "expired" and requests < 3:
                download, requests = self.request_download(recording_id), requests + 1
                continue
            if download.status in ("failed", "expired"):
                raise DownloadGone(PROVIDER, f"Fathom's download {download.status}")
            polls += 1
            delay = backoff_delay(polls, self.poll_initial, self.poll_max)
            if time.monotonic() + delay > deadline:
                raise StillWorking(PROVIDER, "Fathom is still preparing the video")
            time.sleep(delay)
            download = self.download_status(recording_id, download.download_id)

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
            except httpx.HTTPError as exc:
                raise ProtocolError(
                    PROVIDER, f"Fathom's file storage sent a body we cannot read ({exc})"
                ) from exc
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
            if response.status_code in (401, 403, 404, 410):
                raise LinkExpired(PROVIDER, "Fathom's download link expired: asking for a new one")
            if response.status_code >= 500 or response.status_code == 429:
                raise TemporaryFault(
                    PROVIDER, f"Fathom's file storage failed ({response.status_code})"
                )
            if response.status_code not in (200, 206):
                raise error_for(PROVIDER, response)
            skip = offset if (offset and response.status_code == 200) else 0
            # Pieces as they arrive (no re-chunking here): a cut-off loses none of what came.
            for chunk in response.iter_bytes():
                if skip:  # The host ignored Range: drop what we already have.
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                    if not chunk:
                        continue
                yield chunk

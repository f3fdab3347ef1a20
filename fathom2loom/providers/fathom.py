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
(`fathom2loom.transfer.rules`); this client only says what Fathom said.

The signed file URL is fetched with a second client that never carries the API key, resuming
with `Range` after a cut-off and checking the final size.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx

from fathom2loom.errors import (
    CoordinationUnavailable,
    DownloadGone,
    ProtocolError,
    RateLimited,
    RecordingNotFound,
    StillWorking,
)
from fathom2loom.providers.fathom_files import stream_file
from fathom2loom.providers.fathom_models import (
    DEFAULT_BASE_URL,
    PROVIDER,
    DownloadFile,
    FathomLimits,
    Meeting,
    MeetingsPage,
    RecordingDownload,
    Webhook,
)
from fathom2loom.providers.fathom_webhooks import WebhookCalls
from fathom2loom.providers.http import Kinds, RetryPolicy, parse, read_json, send
from fathom2loom.providers.key_text import require_usable_key
from fathom2loom.providers.ratelimit import RateLimiter, key_identity
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


class FathomClient(WebhookCalls):
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
        require_usable_key(PROVIDER, self._api_key)
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
        """The file's bytes from `start` (`fathom_files.stream_file`: resumed, size-checked)."""
        return stream_file(self._storage, file, start=start, max_resumes=max_resumes)

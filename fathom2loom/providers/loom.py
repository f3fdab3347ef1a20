"""The Loom adapter: our own small contract (docs/loom-contract.md), uploads in tus 1.0.

Loom publishes no upload API; this client speaks the contract the project defines, against a
configurable base URL and auth header. The user's Loom key goes only to that base URL's origin:
an upload URL on another host gets the tus request without it (the URL is the capability).
Uploads stream from a byte source that can restart at any offset, one `chunk_bytes` body at a
time, so memory stays flat whatever the file size. Responses that do not match the contract are
`ProtocolError`s; a video the server no longer has is `VideoGone`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal, Self
from urllib.parse import quote, urljoin

import httpx
from pydantic import BaseModel, Field, model_validator

from fathom2loom.errors import (
    ProtocolError,
    ProviderError,
    ProviderRejected,
    StillWorking,
    UploadGone,
    VideoGone,
)
from fathom2loom.providers.http import RetryPolicy, parse, read_json, send
from fathom2loom.providers.key_text import require_usable_key
from fathom2loom.providers.ratelimit import key_identity
from fathom2loom.providers.tus import ByteSource, TusClient
from fathom2loom.retry import backoff_delay

__all__ = ["LoomClient", "LoomVideo"]

PROVIDER = "Loom"


class LoomVideo(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    status: Literal["awaiting_upload", "uploading", "processing", "ready", "failed"]
    title: str = ""
    size_bytes: int = Field(gt=0)
    received_bytes: int = 0
    upload_endpoint: str
    upload_url: str | None = None
    share_url: str | None = None
    failure_reason: str | None = None

    @model_validator(mode="after")
    def _ready_has_link(self) -> Self:
        if self.status == "ready" and not (self.share_url or "").startswith(
            ("https://", "http://")
        ):
            raise ValueError("a ready video needs an http(s) share_url")
        return self


class LoomClient:
    """One user's Loom access through the adapter contract."""

    def __init__(
        self,
        api_key: str,
        *,
        http: httpx.Client,
        base_url: str,
        auth_header: str = "Authorization",
        auth_scheme: str = "Bearer ",
        policy: RetryPolicy | None = None,
        chunk_bytes: int = 8 * 1024 * 1024,
        identity: str | None = None,
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._auth = {auth_header: f"{auth_scheme}{api_key}"}
        self._identity = identity or key_identity(api_key)
        self.policy = policy or RetryPolicy()
        self.chunk_bytes = chunk_bytes
        self.tus = TusClient(
            http,
            provider=PROVIDER,
            auth_headers=self._auth,
            auth_origin=self.base_url,
            policy=self.policy,
        )

    def __repr__(self) -> str:
        return f"LoomClient(key={self._identity[:8]}…, base_url={self.base_url!r})"

    def _call(
        self, method: str, path: str, messages: dict[int, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        require_usable_key(PROVIDER, self._api_key)
        headers = {**self._auth, "Accept": "application/json", **kwargs.pop("headers", {})}
        return send(
            self._http,
            PROVIDER,
            method,
            f"{self.base_url}{path}",
            policy=self.policy,
            messages=messages,
            headers=headers,
            **kwargs,
        )

    def whoami(self) -> str:
        """The account the key belongs to (`KeyRejected` when the key is refused)."""
        response = self._call("GET", "/v1/me")
        body = read_json(response, PROVIDER, "an account")
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise ProtocolError(PROVIDER, "Loom sent an account we cannot read")
        return str(body.get("name") or body["id"])

    def create_video(
        self,
        *,
        title: str,
        description: str,
        size_bytes: int,
        content_type: str,
        idempotency_key: str,
    ) -> LoomVideo:
        """Create the video, or get back the one this idempotency key made before."""
        if not 0 < len(idempotency_key) <= 255:
            raise ValueError("idempotency_key must be 1 to 255 characters")
        response = self._call(
            "POST",
            "/v1/videos",
            messages={413: "Loom refused the file as too large (413)"},
            headers={"Idempotency-Key": idempotency_key},
            json={
                "title": title,
                "description": description,
                "size_bytes": size_bytes,
                "content_type": content_type,
            },
        )
        return parse(LoomVideo, read_json(response, PROVIDER, "a video"), PROVIDER, "a video")

    def get_video(self, video_id: str) -> LoomVideo:
        """The video as of now; `VideoGone` when Loom no longer has it (deleted or unknown)."""
        response = self._call(
            "GET",
            f"/v1/videos/{quote(video_id, safe='')}",
            messages={404: "Loom no longer has the video (404): making it again"},
            kinds={404: VideoGone},
        )
        video = parse(LoomVideo, read_json(response, PROVIDER, "a video"), PROVIDER, "a video")
        if video.id != video_id:
            raise ProtocolError(PROVIDER, "Loom sent another video than the one asked for")
        return video

    def delete_video(self, video_id: str) -> None:
        """Delete a video (an unfinished one after a cancel); already gone is fine."""
        try:
            self._call("DELETE", f"/v1/videos/{quote(video_id, safe='')}")
        except ProviderError as exc:
            if exc.status != 404:
                raise

    def upload(
        self,
        video: LoomVideo,
        source: ByteSource,
        *,
        on_progress: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        """Send the video's bytes, continuing an upload the server already holds."""
        require_usable_key(PROVIDER, self._api_key)
        url = video.upload_url and urljoin(self.base_url + "/", video.upload_url)
        if url:
            try:
                self.tus.offset(url)
            except UploadGone:
                url = None
        if not url:
            endpoint = urljoin(self.base_url + "/", video.upload_endpoint)
            try:
                url = self.tus.create(
                    endpoint,
                    video.size_bytes,
                    {"video_id": video.id, "filename": f"{video.id}.mp4", "filetype": "video/mp4"},
                )
            except ProviderError as exc:
                if exc.status in (404, 410):
                    raise VideoGone(
                        PROVIDER, "Loom no longer has the video: making it again"
                    ) from exc
                raise
        self.tus.upload(
            url,
            source,
            length=video.size_bytes,
            chunk_bytes=self.chunk_bytes,
            on_progress=on_progress,
            should_stop=should_stop,
        )

    def wait_ready(self, video_id: str, *, timeout: float) -> LoomVideo:
        """Poll until the video is ready: for scripts and benches (transfers never block)."""
        deadline = time.monotonic() + timeout
        polls = 0
        while True:
            video = self.get_video(video_id)
            if video.status == "ready":
                return video
            if video.status == "failed":
                reason = video.failure_reason or "no reason given"
                raise ProviderRejected(PROVIDER, f"Loom could not process the video ({reason})")
            polls += 1
            delay = backoff_delay(polls, 0.2, 5.0)
            if time.monotonic() + delay > deadline:
                raise StillWorking(PROVIDER, "Loom is still processing the video")
            time.sleep(delay)

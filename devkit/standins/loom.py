"""A local stand-in for the Loom adapter contract (docs/loom-contract.md) with a tus 1.0 server
(`standins.tus`).

Loom publishes no upload API, so this implements our own contract: videos created idempotently,
bytes received over tus and written to disk as they arrive, processing that finishes lazily.
Faults cover what a real bridge does to a client: refused keys, 429/5xx, connections cut in the
middle of a PATCH (the stored offset is exactly what was written), slow PATCHes, failed processing.
"""

from __future__ import annotations

import hashlib
import html
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, ClassVar

from devkit.standins.base import StandinServer
from devkit.standins.http import HTTPError, Response, json_response
from devkit.standins.request import Request
from devkit.standins.tus import TusServer, upload_metadata

__all__ = ["LoomStandin"]

TITLE_MAX, DESCRIPTION_MAX = 200, 5000  # The contract's field sizes
SHARE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} (Loom stand-in)</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto;
padding: 0 1rem">
<p style="color: #625df5; font-weight: 600">Loom stand-in (sandbox)</p>
<h1>{title}</h1><p>Video received whole: {size}.</p>
<pre style="white-space: pre-wrap">{description}</pre></body></html>
"""


@dataclass
class Video:
    """A video as the contract knows it; its bytes are in the file at `path`."""

    id: str
    owner: str
    title: str
    size_bytes: int
    path: Path
    description: str = ""
    received: int = 0
    upload_id: str | None = None
    completed_at: float | None = None  # time.monotonic() when the last byte arrived
    fail: bool = False
    deleted: bool = False


class LoomStandin(StandinServer):
    """The Loom contract on 127.0.0.1: `/v1/videos` plus a tus server at `/tus/`."""

    subject_prefix = "video"
    fault_extras: ClassVar[dict[str, type]] = {
        "patch_fail_after_bytes": int,
        "slow_patch_seconds": float,
        "fail_processing": bool,
    }

    def __init__(
        self,
        port: int = 0,
        storage_dir: Path | None = None,
        processing_seconds: float = 0.0,
        keys: set[str] | None = None,
        max_size_bytes: int = 5 << 30,
        local_share_links: bool = False,
        **serve: Any,
    ) -> None:
        super().__init__(port, **serve)
        # Share links to Loom's site (as Loom would give), or to a page of this stand-in's own
        # (the sandbox: a user who opens the link sees what arrived).
        self.local_share_links = local_share_links
        self._tmp = TemporaryDirectory(prefix="loom-standin-") if storage_dir is None else None
        self.storage_dir = Path(self._tmp.name) if self._tmp else Path(str(storage_dir))
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.processing_seconds = processing_seconds
        self.keys = keys
        self.max_size_bytes = max_size_bytes
        self._videos: dict[str, Video] = {}
        self._by_idempotency: dict[tuple[str, str], Video] = {}
        self._created: Counter[str] = Counter()
        self._tus_requests = self._tus_with_key = 0
        self.route("GET", "/v1/me", self._me)
        self.route("POST", "/v1/videos", self._create)
        self.route("GET", "/v1/videos/{id}", self._get)
        self.route("DELETE", "/v1/videos/{id}", self._delete)
        self.tus = TusServer(self)
        self.route("GET", "/share/{id}", self._share_page)

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- inspection ---------------------------------------------------------------------------

    def find_video(self, video_id: str) -> Video | None:
        with self.lock:
            return self._videos.get(video_id)

    def video_path(self, video_id: str) -> Path:
        with self.lock:
            return self._videos[video_id].path

    def video_sha256(self, video_id: str) -> str:
        digest = hashlib.sha256()
        with self.video_path(video_id).open("rb") as stored:
            while piece := stored.read(1 << 20):
                digest.update(piece)
        return digest.hexdigest()

    def video_text(self, video_id: str) -> tuple[str, str]:
        """The title and description a video was created with."""
        with self.lock:
            video = self._videos[video_id]
            return video.title, video.description

    def videos(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "id": v.id,
                    "status": self._status(v),
                    "size_bytes": v.size_bytes,
                    "received_bytes": v.received,
                    "deleted": v.deleted,
                }
                for v in self._videos.values()
            ]

    def extra_stats(self) -> dict[str, Any]:
        return {
            "videos_created_by_key": dict(self._created),
            "bytes_received": self.tus.bytes_received,
            "tus_requests": self._tus_requests,
            "tus_requests_with_key": self._tus_with_key,
            "videos": self.videos(),
        }

    def reset_counters(self) -> None:
        self._created.clear()
        self._tus_requests = self._tus_with_key = 0

    # -- hooks ----------------------------------------------------------------------------------

    def request_key(self, req: Request) -> str | None:
        scheme, _, key = (req.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return key.strip() or None

    def route_subjects(self, req: Request) -> set[str]:
        if "id" in req.params:
            return {f"video:{req.params['id']}"}
        uploading = self.tus.video_of(req.params.get("upload_id", ""))
        if uploading is not None:
            return {f"video:{uploading}"}
        try:
            video_id = upload_metadata(req.header("Upload-Metadata")).get("video_id")
        except HTTPError:
            video_id = None
        return {f"video:{video_id}"} if video_id else set()

    def admit(self, req: Request) -> None:
        """tus requests may come without a key (the upload URL is the capability), not /v1;
        share pages are public, as Loom's are."""
        if " /share/" in req.route:
            return
        if " /tus/" in req.route:
            with self.lock:
                self._tus_requests += 1
                self._tus_with_key += req.key is not None
            if req.key is None:
                return
        if req.key is None or (self.keys is not None and req.key not in self.keys):
            raise HTTPError(401, "the Loom key was refused")

    def error_body(self, status: int, message: str, code: str) -> dict[str, Any]:
        return {"error": {"code": code, "message": message}}

    # -- videos ---------------------------------------------------------------------------------

    def _status(self, video: Video) -> str:
        if video.completed_at is None:
            return "uploading" if video.upload_id else "awaiting_upload"
        if time.monotonic() < video.completed_at + self.processing_seconds:
            return "processing"
        return "failed" if video.fail else "ready"

    def _doc(self, video: Video) -> dict[str, Any]:
        with self.lock:
            status = self._status(video)
            upload = f"{self.root_url}/tus/{video.upload_id}" if video.upload_id else None
            site = self.root_url if self.local_share_links else "https://www.loom.com"
            share = f"{site}/share/{video.id}" if status == "ready" else None
            return {
                "id": video.id,
                "status": status,
                "title": video.title,
                "size_bytes": video.size_bytes,
                "received_bytes": video.received,
                "upload_endpoint": f"{self.root_url}/tus/",
                "upload_url": upload,
                "share_url": share,
                "failure_reason": "processing_failed" if status == "failed" else None,
            }

    def _share_page(self, req: Request) -> Response:
        """What a viewer of the share link sees: the video's title, size and description."""
        with self.lock:
            video = self._videos.get(req.params["id"])
            ready = video is not None and not video.deleted and self._status(video) == "ready"
        if video is None or not ready:
            raise HTTPError(404, "no such video")
        page = SHARE_PAGE.format(
            title=html.escape(video.title),
            size=f"{video.size_bytes / 1e6:.1f} MB",
            description=html.escape(video.description),
        )
        return Response(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def _me(self, req: Request) -> Response:
        """Who the key belongs to: the cheap call that tells a key works."""
        name = hashlib.sha256((req.key or "").encode()).hexdigest()[:12]
        return json_response(200, {"id": f"user-{name}", "name": f"Loom user {name}"})

    def _create(self, req: Request) -> Response:
        idempotency = req.header("Idempotency-Key") or ""
        if not 0 < len(idempotency) <= 255:
            raise HTTPError(422, "an Idempotency-Key header of 1 to 255 characters is required")
        scope = (req.key or "", idempotency)
        with self.lock:
            seen = self._by_idempotency.get(scope)
        if seen is not None and not seen.deleted:
            return json_response(200, self._doc(seen))
        body = req.json()
        title, size = body.get("title"), body.get("size_bytes")
        if not isinstance(title, str) or not isinstance(body.get("description", ""), str):
            raise HTTPError(422, "title and description must be strings")
        if len(title) > TITLE_MAX or len(body.get("description", "")) > DESCRIPTION_MAX:
            raise HTTPError(422, f"title or description too long ({TITLE_MAX}, {DESCRIPTION_MAX})")
        if type(size) is not int or size < 1 or not isinstance(body.get("content_type"), str):
            raise HTTPError(422, "size_bytes must be a positive integer and content_type a string")
        if size > self.max_size_bytes:
            raise HTTPError(413, f"videos are limited to {self.max_size_bytes} bytes")
        with self.lock:
            seen = self._by_idempotency.get(scope)
            if seen is not None and not seen.deleted:
                return json_response(200, self._doc(seen))
            video_id = secrets.token_hex(6)
            video = Video(
                video_id,
                scope[0],
                title,
                size,
                self.storage_dir / f"{video_id}.mp4",
                body.get("description", ""),
            )
            self._videos[video_id] = self._by_idempotency[scope] = video
            self._created[idempotency] += 1
        return json_response(201, self._doc(video))

    def _owned(self, req: Request) -> Video:
        with self.lock:
            video = self._videos.get(req.params["id"])
        if video is None or video.deleted or video.owner != req.key:
            raise HTTPError(404, "video not found")
        return video

    def _get(self, req: Request) -> Response:
        return json_response(200, self._doc(self._owned(req)))

    def _delete(self, req: Request) -> Response:
        video = self._owned(req)
        with self.lock:
            video.deleted = True
            self.tus.terminate(video)
            video.path.unlink(missing_ok=True)
        return Response(204)

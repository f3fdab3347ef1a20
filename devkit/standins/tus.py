"""The Loom stand-in's tus 1.0 server (core protocol, creation and termination extensions).

A video's bytes arrive over tus PATCHes and are appended to its file as they come, never held
whole; the stored offset is exactly what was written, also when a fault cuts a PATCH off
(`patch_fail_after_bytes`) or slows it down (`slow_patch_seconds`). The upload URL is the
capability: requests need no key. The last byte ends the upload, and processing begins.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devkit.standins.http import ConnectionCut, HTTPError, Response
from devkit.standins.request import Request

if TYPE_CHECKING:
    from devkit.standins.loom import LoomStandin, Video

__all__ = ["TUS_VERSION", "TusServer", "upload_metadata"]

TUS_VERSION = "1.0.0"
_OFFSET_TYPE = "application/offset+octet-stream"


@dataclass
class _Upload:
    id: str
    video: Video
    gone: bool = False
    busy: bool = False


def upload_metadata(raw: str | None) -> dict[str, str]:
    """tus `Upload-Metadata`: comma-separated `key base64(value)` pairs."""
    pairs: dict[str, str] = {}
    for item in (raw or "").split(","):
        key, _, value = item.strip().partition(" ")
        if not key:
            continue
        try:
            pairs[key] = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise HTTPError(400, f"Upload-Metadata value of {key!r} is not base64") from None
    return pairs


def _require_tus(req: Request) -> None:
    if req.header("Tus-Resumable") != TUS_VERSION:
        raise HTTPError(412, f"Tus-Resumable: {TUS_VERSION} is required", headers=_tus_version())


def _tus_version() -> dict[str, str]:
    return {"Tus-Version": TUS_VERSION}


def _tus(headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **(headers or {})}


class TusServer:
    """The tus routes of a `LoomStandin` (under `/tus/`), and its uploads (under its lock)."""

    def __init__(self, loom: LoomStandin) -> None:
        self.loom = loom
        self.uploads: dict[str, _Upload] = {}
        self.bytes_received = 0
        loom.route("OPTIONS", "/tus/", self._options)
        loom.route("POST", "/tus/", self._create)
        loom.route("HEAD", "/tus/{upload_id}", self._head)
        loom.route("PATCH", "/tus/{upload_id}", self._patch)
        loom.route("DELETE", "/tus/{upload_id}", self._delete)

    def video_of(self, upload_id: str) -> str | None:
        """The id of the video an upload is for (a fault subject), if the upload is known."""
        with self.loom.lock:
            upload = self.uploads.get(upload_id)
        return upload.video.id if upload is not None else None

    def terminate(self, video: Video) -> None:
        """The video was deleted: its upload is gone too (call with the lock held)."""
        if video.upload_id:
            self.uploads[video.upload_id].gone = True

    def _options(self, req: Request) -> Response:
        extra = {
            "Tus-Extension": "creation,termination",
            "Tus-Max-Size": str(self.loom.max_size_bytes),
        }
        return Response(204, headers=_tus({**_tus_version(), **extra}))

    def _upload(self, req: Request) -> _Upload:
        """The upload a HEAD/PATCH/DELETE names, after the tus version check."""
        _require_tus(req)
        with self.loom.lock:
            upload = self.uploads.get(req.params["upload_id"])
        if upload is None:
            raise HTTPError(404, "upload not found")
        if upload.gone:
            raise HTTPError(410, "upload terminated")
        return upload

    def _create(self, req: Request) -> Response:
        _require_tus(req)
        length = req.header("Upload-Length") or ""
        video_id = upload_metadata(req.header("Upload-Metadata")).get("video_id")
        if not length.isdigit() or not video_id:
            raise HTTPError(400, "Upload-Length and a video_id in Upload-Metadata are required")
        with self.loom.lock:
            video = self.loom.find_video(video_id)
            if video is None or video.deleted:
                raise HTTPError(404, "video not found")
            if int(length) != video.size_bytes:
                raise HTTPError(400, f"Upload-Length must be the video's {video.size_bytes} bytes")
            old = self.uploads.get(video.upload_id or "")
            if video.completed_at is not None or (old and old.busy):
                raise HTTPError(409, "this video's bytes are complete or being written")
            if old is not None:
                old.gone = True
            upload = _Upload(secrets.token_hex(16), video)
            self.uploads[upload.id] = upload
            video.upload_id, video.received = upload.id, 0
            video.path.write_bytes(b"")
        return Response(201, headers=_tus({"Location": f"/tus/{upload.id}", "Upload-Offset": "0"}))

    def _head(self, req: Request) -> Response:
        video = self._upload(req).video
        with self.loom.lock:
            offset, length = video.received, video.size_bytes
        headers = {"Upload-Offset": str(offset), "Upload-Length": str(length)}
        return Response(200, headers=_tus({**headers, "Cache-Control": "no-store"}))

    def _patch(self, req: Request) -> Response:
        upload = self._upload(req)
        content_type = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != _OFFSET_TYPE:
            raise HTTPError(415, f"Content-Type must be {_OFFSET_TYPE}")
        offset = req.header("Upload-Offset") or ""
        if not offset.isdigit():
            raise HTTPError(400, "Upload-Offset is required")
        declared = req.header("Content-Length") or ""
        video = upload.video
        if declared.isdigit() and int(offset) + int(declared) > video.size_bytes:
            raise HTTPError(413, "the body goes past Upload-Length")
        slow = self.loom.take_extra("slow_patch_seconds", req)
        if slow:
            time.sleep(float(slow))
        with self.loom.lock:
            if upload.gone:
                raise HTTPError(410, "upload terminated")
            if upload.busy or int(offset) != video.received:
                raise HTTPError(409, f"Upload-Offset must be {video.received}")
            upload.busy = True
            fail_after = self.loom.take_extra("patch_fail_after_bytes", req)
        try:
            self._receive(req, upload, fail_after)
        finally:
            with self.loom.lock:
                upload.busy = False
            self._complete_if_done(req, video)
        return Response(204, headers=_tus({"Upload-Offset": str(video.received)}))

    def _receive(self, req: Request, upload: _Upload, fail_after: int | None) -> None:
        """Append the body to the file as it arrives; with a fault, stop at `fail_after` bytes."""
        video, taken = upload.video, 0
        with video.path.open("ab") as out:
            for piece in req.pieces():
                room = video.size_bytes - video.received
                keep = piece[: room if fail_after is None else min(room, fail_after - taken)]
                out.write(keep)
                out.flush()
                taken += len(keep)
                with self.loom.lock:
                    if upload.gone:
                        raise HTTPError(410, "upload terminated")
                    video.received += len(keep)
                    self.bytes_received += len(keep)
                if fail_after is not None and taken >= fail_after:
                    break
                if len(keep) < len(piece):
                    req.close = True
                    raise HTTPError(413, "the body goes past Upload-Length")
        if fail_after is not None:
            raise ConnectionCut

    def _complete_if_done(self, req: Request, video: Video) -> None:
        with self.loom.lock:
            if video.completed_at is None and video.received == video.size_bytes:
                video.fail = bool(self.loom.take_extra("fail_processing", req))
                video.completed_at = time.monotonic()

    def _delete(self, req: Request) -> Response:
        upload = self._upload(req)
        video = upload.video
        with self.loom.lock:
            upload.gone = True
            if video.completed_at is None:
                video.upload_id, video.received = None, 0
                video.path.unlink(missing_ok=True)
        return Response(204, headers=_tus())

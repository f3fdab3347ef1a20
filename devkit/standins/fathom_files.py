"""The Fathom stand-in's three-step video download: a render requested, polled until it is done,
then a short-lived signed URL on a storage host that serves the bytes with Range support.

Renders end lazily (no timers) and live in memory, like their signed links: a restart of
Fathom's side loses them. Faults: slow or failed renders, expired downloads and links, transfers
cut off after N bytes; downloads are paced to `bandwidth` bytes per second when it is set.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from devkit.standins.content import iso, iter_content
from devkit.standins.http import HTTPError, Response, json_response
from devkit.standins.request import Request

if TYPE_CHECKING:
    from devkit.standins.fathom import FathomStandin, Meeting

__all__ = ["Download", "FathomFiles"]


@dataclass
class _Link:
    recording_id: int
    size: int
    content_type: str
    expires: float  # time.monotonic()


@dataclass
class Download:
    download_id: str
    recording_id: int
    key: str
    ready_at: float  # time.monotonic()
    failure: str | None
    expire: bool
    meeting: Meeting
    token: str | None = None


def _storage_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> HTTPError:
    """Storage hosts answer in XML, not in Fathom's JSON: clients must cope with both."""
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
    body += f"<Message>{message}</Message></Error>"
    return HTTPError(status, message, headers=headers, body=body.encode(), content_type="text/xml")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) asked for by a single `Range: bytes=...` header; None means the whole file."""
    found = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header or "")
    if not found or found.groups() == ("", ""):
        return None
    first, last = found.groups()
    if first:
        start, end = int(first), min(size, int(last) + 1) if last else size
    else:
        start, end = max(0, size - int(last)), size
    if start >= size or end <= start:
        raise _storage_error(
            416, "InvalidRange", "Range not satisfiable", {"Content-Range": f"bytes */{size}"}
        )
    return start, end


def _paced(pieces: Iterator[bytes], bandwidth: int | None) -> Iterator[bytes]:
    """The pieces at no more than `bandwidth` bytes per second (one connection's share)."""
    if not bandwidth:
        yield from pieces
        return
    started, sent = time.monotonic(), 0
    for piece in pieces:
        yield piece
        sent += len(piece)
        ahead = sent / bandwidth - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


class FathomFiles:
    """The download routes of a `FathomStandin`, and what they keep (under its lock)."""

    def __init__(self, fathom: FathomStandin) -> None:
        self.fathom = fathom
        self.downloads: dict[str, Download] = {}
        self.links: dict[str, _Link] = {}
        self.bytes_served = self.downloads_requested = self.key_to_storage = 0
        fathom.route("POST", "/recordings/{id}/download", self._request_download)
        fathom.route("GET", "/recordings/{id}/downloads/{download_id}", self._poll_download)
        for method in ("GET", "HEAD"):
            fathom.route(method, "/_files/{token}", self._file, api=False)

    def recording_of(self, token: str) -> int | None:
        """The recording a signed link's token is for (a fault subject), if it is known."""
        with self.fathom.lock:
            link = self.links.get(token)
        return link.recording_id if link else None

    def reset_counters(self) -> None:
        self.bytes_served = self.downloads_requested = self.key_to_storage = 0

    def forget(self) -> None:
        """Renders and signed links live in memory: a restart loses them (meetings stay)."""
        self.downloads.clear()
        self.links.clear()

    # -- the API ----------------------------------------------------------------------------

    def _request_download(self, req: Request) -> Response:
        fathom = self.fathom
        meeting = fathom.meeting(req)
        failure = fathom.take_extra("render_failure", req)
        render = fathom.take_extra("render_seconds", req)
        render = fathom.render_seconds if render is None else float(render)
        download = Download(
            download_id=f"dl_{secrets.token_hex(10)}",
            recording_id=meeting.doc["recording_id"],
            key=req.key or "",
            ready_at=time.monotonic() + (0.0 if meeting.audio_only else render),
            failure=failure,
            expire=fathom.take_count("expired_downloads", req),
            meeting=meeting,
        )
        with fathom.lock:
            self.downloads[download.download_id] = download
            self.downloads_requested += 1
        return json_response(202, self._download_doc(download, polled=False))

    def _poll_download(self, req: Request) -> Response:
        with self.fathom.lock:
            download = self.downloads.get(req.params["download_id"])
        if download is None or download.key != req.key:
            raise HTTPError(404, "download not found")
        if str(download.recording_id) != req.params["id"]:
            raise HTTPError(404, "download not found")
        return json_response(200, self._download_doc(download, polled=True))

    def _download_doc(self, download: Download, polled: bool) -> dict[str, Any]:
        """A RecordingDownload as of now: rendering ends lazily, no timers involved.

        The 202 of a video download always says `processing`, as Fathom's does; audio-only
        downloads may be `completed` at once.
        """
        now = time.monotonic()
        doc: dict[str, Any] = {
            "download_id": download.download_id,
            "recording_id": download.recording_id,
            "status": "processing",
        }
        if now < download.ready_at or not (polled or download.meeting.audio_only):
            return doc
        if download.failure:
            return {**doc, "status": "failed", "failure_reason": download.failure}
        if download.expire and polled:
            return {**doc, "status": "expired"}
        link = self._link(download, now)
        if now >= link.expires:
            return {**doc, "status": "expired"}
        expires_at = datetime.now(UTC) + timedelta(seconds=link.expires - now)
        kind = "audio" if download.meeting.audio_only else "video"
        file = {
            "url": f"{self.fathom.root_url}/_files/{download.token}",
            "content_type": link.content_type,
            "file_size_bytes": link.size,
            "expires_at": iso(expires_at),
        }
        return {**doc, "status": "completed", kind: file}

    def _link(self, download: Download, now: float) -> _Link:
        """The download's signed URL, made the first time the download is seen completed."""
        with self.fathom.lock:
            if download.token is None:
                download.token = secrets.token_urlsafe(24)
                content_type = "audio/mp4" if download.meeting.audio_only else "video/mp4"
                self.links[download.token] = _Link(
                    download.recording_id,
                    download.meeting.size,
                    content_type,
                    now + self.fathom.link_ttl_seconds,
                )
            return self.links[download.token]

    # -- the storage host -------------------------------------------------------------------

    def _file(self, req: Request) -> Response:
        fathom = self.fathom
        with fathom.lock:
            link = self.links.get(req.params["token"])
            if req.header("X-Api-Key") or req.header("Authorization"):
                self.key_to_storage += 1
        if link is None:
            raise _storage_error(403, "AccessDenied", "Access Denied")
        expired = req.method == "GET" and fathom.take_count("expired_links", req)
        if expired or time.monotonic() >= link.expires:
            raise _storage_error(403, "AccessDenied", "Request has expired")
        asked = _byte_range(req.header("Range"), link.size)
        start, end = asked or (0, link.size)
        headers = {"Content-Type": link.content_type, "Accept-Ranges": "bytes"}
        if asked:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{link.size}"
        return Response(
            206 if asked else 200,
            _paced(iter_content(link.recording_id, link.size, start, end), fathom.bandwidth),
            headers,
            length=end - start,
            cut_after=fathom.take_extra("cut_after_bytes", req) if req.method == "GET" else None,
            on_sent=self._served,
        )

    def _served(self, count: int) -> None:
        with self.fathom.lock:
            self.bytes_served += count

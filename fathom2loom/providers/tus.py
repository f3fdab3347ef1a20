"""A tus 1.0 resumable-upload client (core protocol plus the creation and termination extensions).

Written against the protocol, not against our stand-in, so it works with any tus server: relative
`Location`s, `204` or `200` to `HEAD`, `409` on an offset mismatch. A `PATCH` is never retried
blindly (part of it may have landed); after any fault the client asks the server for its offset
with `HEAD` and continues from there, re-opening the byte source at that offset.

Credentials (`auth_headers`) go only to URLs on `auth_origin`: an upload URL that points at
another host (a storage bucket, a CDN) is a capability of its own and gets the tus headers only.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import urljoin, urlsplit

import httpx

from fathom2loom.errors import (
    ProtocolError,
    ProviderError,
    TemporaryFault,
    TransientProviderError,
    UploadGone,
    UploadStopped,
)
from fathom2loom.providers.http import RetryPolicy, send
from fathom2loom.retry import backoff_delay

__all__ = ["TUS_VERSION", "ByteSource", "TusClient", "UploadStopped", "origin_of", "rechunk"]

TUS_VERSION = "1.0.0"
ByteSource = Callable[[int], Iterable[bytes]]


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with default ports filled in, for same-origin checks."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def rechunk(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup a byte stream into `size`-byte bodies (the last may be shorter).

    Each byte is copied once, when its body is joined: growing and slicing one buffer instead
    copied each body three times, a fifth of a transfer's time (bench/transfer_throughput.py).
    """
    parts: list[bytes] = []
    held = 0
    for piece in pieces:
        while held + len(piece) >= size:
            take = size - held
            parts.append(piece[:take])
            yield b"".join(parts)
            parts, held, piece = [], 0, piece[take:]
        if piece:
            parts.append(piece)
            held += len(piece)
    if parts:
        yield b"".join(parts)


def _once(body: bytes) -> Iterator[bytes]:
    yield body


class TusClient:
    def __init__(
        self,
        http: httpx.Client,
        *,
        provider: str,
        auth_headers: dict[str, str] | None = None,
        auth_origin: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self.provider = provider
        self._auth = dict(auth_headers or {})
        self._auth_origin = origin_of(auth_origin) if auth_origin else None
        self.policy = policy or RetryPolicy()

    def _headers(self, url: str, **extra: str) -> dict[str, str]:
        """tus headers for `url`, with the credentials only on the trusted origin."""
        headers = {"Tus-Resumable": TUS_VERSION, **extra}
        if self._auth_origin is not None and origin_of(url) == self._auth_origin:
            headers.update(self._auth)
        return headers

    def _offset_header(self, response: httpx.Response) -> int:
        raw = response.headers.get("Upload-Offset", "")
        if not (raw.isascii() and raw.isdigit()):  # `"\u00b2".isdigit()` is True
            raise ProtocolError(
                self.provider, f"{self.provider}'s upload server sent no valid Upload-Offset"
            )
        return int(raw)

    def _gone(self, url: str) -> dict[int, str]:
        message = f"{self.provider} no longer has the upload: starting it again"
        return {404: message, 410: message}

    def create(self, endpoint: str, length: int, metadata: dict[str, str]) -> str:
        """Create an upload of `length` bytes; return its absolute URL."""
        encoded = ",".join(
            f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in metadata.items()
        )
        response = send(
            self._http,
            self.provider,
            "POST",
            endpoint,
            policy=self.policy,
            retry_transport=False,
            headers=self._headers(
                endpoint, **{"Upload-Length": str(length), "Upload-Metadata": encoded}
            ),
        )
        location = response.headers.get("Location")
        if not location:
            raise TemporaryFault(self.provider, f"{self.provider} created no upload location")
        return str(urljoin(endpoint, location))

    def offset(self, url: str) -> int:
        """How many bytes the server holds for this upload."""
        try:
            response = send(
                self._http,
                self.provider,
                "HEAD",
                url,
                policy=self.policy,
                headers=self._headers(url),
            )
        except ProviderError as exc:
            if exc.status in (404, 410):
                raise UploadGone(self.provider, self._gone(url)[404], status=exc.status) from exc
            raise
        return self._offset_header(response)

    def patch(self, url: str, offset: int, body: bytes) -> int:
        """Send one body at `offset`; return the server's new offset. One attempt only.

        The body goes through a one-shot iterator: httpx keeps each request reachable from a
        response reference cycle until the garbage collector runs, and that must not pin
        megabytes per chunk.
        """
        headers = self._headers(
            url,
            **{
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(len(body)),
            },
        )
        once = RetryPolicy(attempts=1, max_sleep=0)
        try:
            response = send(
                self._http,
                self.provider,
                "PATCH",
                url,
                policy=once,
                retry_transport=False,
                headers=headers,
                content=_once(body),
            )
        except ProviderError as exc:
            if exc.status == 409:  # Offset mismatch: resume from the server's offset.
                raise TemporaryFault(self.provider, f"{self.provider} upload offset moved") from exc
            if exc.status in (404, 410):
                raise UploadGone(self.provider, self._gone(url)[404], status=exc.status) from exc
            raise
        new_offset = self._offset_header(response)
        if new_offset < offset or new_offset > offset + len(body):
            raise ProtocolError(
                self.provider, f"{self.provider}'s upload server moved the offset impossibly"
            )
        return new_offset

    def terminate(self, url: str) -> None:
        try:
            send(
                self._http,
                self.provider,
                "DELETE",
                url,
                policy=self.policy,
                headers=self._headers(url),
            )
        except ProviderError as exc:
            if exc.status not in (404, 410):
                raise

    def upload(
        self,
        url: str,
        source: ByteSource,
        *,
        length: int,
        chunk_bytes: int,
        on_progress: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        max_resumes: int = 8,
    ) -> int:
        """Upload `length` bytes from `source(offset)`, resuming after faults; return the offset.

        A server that takes only part of a body is fine: the source is re-opened where the
        server stands. `max_resumes` counts faults in a row without progress. Faults of the byte
        source that are not ours (another provider's) propagate unchanged.
        """
        offset = self.offset(url)
        resumes = 0
        while offset < length:
            before = offset
            try:
                for body in rechunk(source(offset), chunk_bytes):
                    if should_stop is not None and should_stop():
                        raise UploadStopped
                    expected = offset + len(body)
                    offset = self.patch(url, offset, body)
                    if on_progress is not None:
                        on_progress(offset)
                    if offset != expected:
                        break  # Part of the body landed: re-open the source at the new offset.
                else:
                    if offset < length:
                        raise TemporaryFault(self.provider, "the byte source ended early")
            except UploadGone:
                raise
            except TransientProviderError as exc:
                if exc.provider != self.provider:
                    raise
                resumes = 1 if offset > before else resumes + 1
                if resumes > max_resumes:
                    raise
                time.sleep(
                    backoff_delay(resumes, self.policy.backoff_base, self.policy.backoff_cap)
                )
                offset = self.offset(url)
        return offset

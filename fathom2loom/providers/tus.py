"""A tus 1.0 resumable-upload client (core protocol plus the creation and termination extensions).

Written against the protocol, not against our stand-in, so it works with any tus server: relative
`Location`s, `204` or `200` to `HEAD`, `409` on an offset mismatch. A `PATCH` is never retried
blindly (part of it may have landed); after any fault the client asks the server for its offset
with `HEAD` and continues from there, re-opening the byte source at that offset.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import urljoin

import httpx

from fathom2loom.errors import ProviderError, TemporaryFault, TransientProviderError
from fathom2loom.providers.http import RetryPolicy, send
from fathom2loom.retry import backoff_delay

__all__ = ["TUS_VERSION", "TusClient", "UploadGone", "UploadStopped", "rechunk"]

TUS_VERSION = "1.0.0"
ByteSource = Callable[[int], Iterable[bytes]]


class UploadGone(TemporaryFault):
    """The server no longer knows the upload (404/410): create a new one."""


class UploadStopped(Exception):
    """The caller asked the upload to stop (e.g. the row was cancelled)."""


def rechunk(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup a byte stream into `size`-byte bodies (the last may be shorter)."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _once(body: bytes) -> Iterator[bytes]:
    yield body


class TusClient:
    def __init__(
        self,
        http: httpx.Client,
        *,
        provider: str,
        headers: dict[str, str] | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self.provider = provider
        self._headers = {"Tus-Resumable": TUS_VERSION, **(headers or {})}
        self.policy = policy or RetryPolicy()

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
            headers={**self._headers, "Upload-Length": str(length), "Upload-Metadata": encoded},
        )
        location = response.headers.get("Location")
        if not location:
            raise TemporaryFault(self.provider, f"{self.provider} created no upload location")
        return str(urljoin(endpoint, location))

    def offset(self, url: str) -> int:
        """How many bytes the server holds for this upload."""
        try:
            response = send(
                self._http, self.provider, "HEAD", url, policy=self.policy, headers=self._headers
            )
        except ProviderError as exc:
            if exc.status in (404, 410):
                raise UploadGone(self.provider, self._gone(url)[404], status=exc.status) from None
            raise
        return int(response.headers["Upload-Offset"])

    def patch(self, url: str, offset: int, body: bytes) -> int:
        """Send one body at `offset`; return the server's new offset. One attempt only.

        The body goes through a one-shot iterator: httpx keeps each request reachable from a
        response reference cycle until the garbage collector runs, and that must not pin
        megabytes per chunk.
        """
        headers = {
            **self._headers,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(len(body)),
        }
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
                raise TemporaryFault(
                    self.provider, f"{self.provider} upload offset moved"
                ) from None
            if exc.status in (404, 410):
                raise UploadGone(self.provider, self._gone(url)[404], status=exc.status) from None
            raise
        return int(response.headers["Upload-Offset"])

    def terminate(self, url: str) -> None:
        try:
            send(
                self._http, self.provider, "DELETE", url, policy=self.policy, headers=self._headers
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

        Faults of the byte source that are not ours (another provider's) propagate unchanged.
        """
        offset = self.offset(url)
        resumes = 0
        while offset < length:
            try:
                for body in rechunk(source(offset), chunk_bytes):
                    if should_stop is not None and should_stop():
                        raise UploadStopped
                    offset = self.patch(url, offset, body)
                    if on_progress is not None:
                        on_progress(offset)
                if offset < length:
                    raise TemporaryFault(self.provider, "the byte source ended early")
            except UploadGone:
                raise
            except TransientProviderError as exc:
                if exc.provider != self.provider:
                    raise
                resumes += 1
                if resumes > max_resumes:
                    raise
                time.sleep(
                    backoff_delay(resumes, self.policy.backoff_base, self.policy.backoff_cap)
                )
                offset = self.offset(url)
        return offset

"""A Fathom download's file, streamed from its signed URL: resumed with `Range` after a cut-off,
checked against the size Fathom announced. No API key ever goes to the storage host (the client
that fetches it carries none)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx

from fathom2loom.errors import LinkExpired, ProtocolError, TemporaryFault
from fathom2loom.providers.fathom_models import PROVIDER, DownloadFile
from fathom2loom.providers.http import error_for
from fathom2loom.retry import backoff_delay

__all__ = ["stream_file"]


def stream_file(
    storage: httpx.Client, file: DownloadFile, *, start: int = 0, max_resumes: int = 8
) -> Iterator[bytes]:
    """The file's bytes from `start`, resuming with `Range` after a cut-off.

    Raises `LinkExpired` when the signed URL has expired (request a new download) and
    `TemporaryFault` when resumes run out or the size does not match what Fathom announced.
    """
    total = file.file_size_bytes
    offset = start
    resumes = 0
    while offset < total:
        if file.expires_at <= datetime.now(UTC):
            raise LinkExpired(PROVIDER, "Fathom's download link expired: asking for a new one")
        oversize = False
        try:
            for chunk in _stream_from(storage, file, offset):
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


def _stream_from(storage: httpx.Client, file: DownloadFile, offset: int) -> Iterator[bytes]:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with storage.stream("GET", file.url, headers=headers) as response:
        if response.status_code in (401, 403, 404, 410):
            raise LinkExpired(PROVIDER, "Fathom's download link expired: asking for a new one")
        if response.status_code >= 500 or response.status_code == 429:
            raise TemporaryFault(PROVIDER, f"Fathom's file storage failed ({response.status_code})")
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

"""Request and response objects for the stand-ins' HTTP/1.1 server.

Bodies are read incrementally, with Content-Length or chunked transfer coding, so a stand-in can
take a multi-gigabyte upload without holding it in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler
from io import BufferedIOBase
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Body",
    "ConnectionCut",
    "HTTPError",
    "IncompleteBody",
    "Request",
    "Response",
    "json_response",
]

DRAIN_LIMIT = 64 << 20  # read and discard up to this much of an unread body to keep the socket


class HTTPError(Exception):
    """Raised by a handler: answer with `status` and the stand-in's error body (or `body`)."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> None:
        super().__init__(f"{status} {message or ''}")
        self.status, self.message = status, message
        self.headers = headers or {}
        self.body, self.content_type = body, content_type


class ConnectionCut(Exception):
    """A handler dropped the connection on purpose (a fault): nothing more may be sent."""


class IncompleteBody(ConnectionError):
    """The client closed the connection before its request body ended."""


@dataclass
class Response:
    """A status, headers and a body: bytes, or pieces of `length` bytes in total."""

    status: int
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: int = 0
    cut_after: int | None = None  # send this many body bytes, then drop the connection
    on_sent: Callable[[int], None] | None = None


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data).encode()
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})


class Body:
    """A request body read in pieces as it arrives, framed by Content-Length or chunked coding."""

    def __init__(self, rfile: BufferedIOBase, headers: Message) -> None:
        self._rfile = rfile
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self.invalid = False
        self._left = 0  # bytes left in the body, or in the current chunk when chunked
        if not self.chunked:
            raw = headers.get("Content-Length", "0").strip()
            self.invalid = not raw.isdigit()
            self._left = 0 if self.invalid else int(raw)
        self.done = not self.chunked and self._left == 0

    def read(self, size: int = 65536) -> bytes:
        """Up to `size` bytes, whatever has arrived; b"" at the end of the body."""
        if self.invalid:
            raise HTTPError(400, "bad Content-Length")
        if self.chunked and not self.done and self._left == 0:
            self._next_chunk()
        if self.done:
            return b""
        data = self._rfile.read1(min(size, self._left))
        if not data:
            raise IncompleteBody("the client closed the connection mid-body")
        self._left -= len(data)
        if self._left == 0 and self.chunked:
            self._rfile.readline(8)
        elif self._left == 0:
            self.done = True
        return data

    def _next_chunk(self) -> None:
        line = self._rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise IncompleteBody("the client closed the connection mid-body")
        try:
            self._left = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HTTPError(400, "bad chunk size") from None
        if self._left == 0:
            while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            self.done = True


class Request:
    """What a route handler sees of one request."""

    def __init__(self, handler: BaseHTTPRequestHandler, body: Body) -> None:
        split = urlsplit(handler.path)
        self.method, self.path = handler.command, split.path
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.headers = handler.headers
        self.body = body
        self.route = ""
        self.params: dict[str, str] = {}
        self.key: str | None = None
        self.subjects: set[str] = set()
        self.close = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def flag(self, name: str) -> bool:
        return (self.arg(name) or "").lower() in ("true", "1")

    def args(self, name: str) -> list[str]:
        """An array parameter, sent as `name[]=a&name[]=b` (or without the brackets)."""
        return self.query.get(f"{name}[]", []) + self.query.get(name, [])

    def pieces(self, size: int = 65536) -> Iterator[bytes]:
        while piece := self.body.read(size):
            yield piece

    def json(self, limit: int = 1 << 20) -> dict[str, Any]:
        """The JSON object body ({} when empty); 400 if it is not one, 413 if too large."""
        data = bytearray()
        for piece in self.pieces():
            data += piece
            if len(data) > limit:
                self.close = True
                raise HTTPError(413, "request body too large")
        try:
            value = json.loads(data) if data else {}
        except ValueError:
            raise HTTPError(400, "the body is not JSON") from None
        if not isinstance(value, dict):
            raise HTTPError(400, "the body must be a JSON object")
        return value

    def finish_body(self) -> None:
        """Read what the handler left of the body, or close the connection after replying."""
        try:
            drained = 0
            while not self.body.done and drained <= DRAIN_LIMIT:
                drained += len(self.body.read())
        except (HTTPError, OSError):
            self.close = True
        self.close = self.close or not self.body.done

"""What a route handler sees of one request, in the worker thread it runs in.

Handlers block (they share locks with test threads, sleep for slow-PATCH faults, write uploads to
disk), so they run in Starlette's worker threads; the request body comes from the event loop's
ASGI `receive` one piece at a time (`anyio.from_thread`), so a stand-in takes a multi-gigabyte
tus PATCH without holding it in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio.from_thread
from starlette.requests import Request as StarletteRequest
from starlette.types import Message, Receive

from devkit.standins.http import HTTPError, IncompleteBody

__all__ = ["Body", "Request"]

DRAIN_LIMIT = 64 << 20  # read and discard up to this much of an unread body to keep the socket


async def _receive(receive: Receive) -> Message:
    return await receive()


class Body:
    """A request body read in pieces as it arrives (h11 has undone any chunked coding)."""

    def __init__(self, receive: Receive, *, empty: bool) -> None:
        self._receive = receive
        self._pending = b""
        self._ended = empty  # no body at all: no need to ask the event loop

    @property
    def done(self) -> bool:
        return self._ended and not self._pending

    def read(self, size: int = 65536) -> bytes:
        """Up to `size` bytes, whatever has arrived; b"" at the end of the body."""
        while not self._pending and not self._ended:
            message = anyio.from_thread.run(_receive, self._receive)
            if message["type"] == "http.disconnect":
                raise IncompleteBody("the client closed the connection mid-body")
            self._pending = message.get("body", b"")
            self._ended = not message.get("more_body", False)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


class Request:
    """One request: method, path, headers and query (Starlette's), the body, and what the
    stand-in learns while handling it (route, params, key, fault subjects)."""

    def __init__(self, request: StarletteRequest, route: str) -> None:
        self.method, self.path = request.method, request.url.path
        self.headers = request.headers
        self.query = request.query_params
        self.params: dict[str, str] = dict(request.path_params)
        length = self.headers.get("content-length", "0").strip()
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.body = Body(request.receive, empty=not chunked and length in ("", "0"))
        self.route = route  # "METHOD /template", the name calls and faults go by
        self.key: str | None = None
        self.subjects: set[str] = set()
        self.close = False  # close the connection after the response

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def arg(self, name: str) -> str | None:
        return self.query.get(name)

    def flag(self, name: str) -> bool:
        return (self.arg(name) or "").lower() in ("true", "1")

    def args(self, name: str) -> list[str]:
        """An array parameter, sent as `name[]=a&name[]=b` (or without the brackets)."""
        return self.query.getlist(f"{name}[]") + self.query.getlist(name)

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

"""What a stand-in's route handler raises and returns: errors, dropped connections, responses.

Plain data: the handler decides in a worker thread, and `standins.asgi` puts the decision on the
wire.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConnectionCut", "HTTPError", "IncompleteBody", "Response", "json_response"]


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
    """The connection is dropped on purpose (a fault), as a crashing server would: nothing more
    is sent, whether or not a response was started."""


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
    on_sent: Callable[[int], None] | None = None  # told each piece's size as it is sent
    then: Callable[[], None] | None = None  # called once the whole response is sent


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data).encode()
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})

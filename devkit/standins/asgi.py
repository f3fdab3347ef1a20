"""A stand-in's ASGI app on Starlette: routing, a worker thread per request, the answer on the wire.

Starlette routes each path; the stand-in's handler for the method runs in a worker thread (it
blocks: locks shared with test threads, streamed uploads, slow faults) and returns a `Response`,
which is written here: the body piece by piece (pieces may be computed or paced, so they are
pulled in a worker thread too), cut off after `cut_after` bytes with the connection dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import anyio
import anyio.to_thread
from starlette.requests import Request as StarletteRequest
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from devkit.standins.http import ConnectionCut, Response
from devkit.standins.request import Request

__all__ = ["Handling", "build_app", "send_response"]

Refusal = Callable[[int], Response]  # the stand-in's answer with this status (404, 405)


@dataclass(frozen=True)
class Handling:
    """A route's handling of one method: its name and what runs in the worker thread (None
    drops the connection without an answer)."""

    name: str  # "METHOD /template", the name calls and faults go by
    run: Callable[[Request], Response | None]


def build_app(table: Mapping[str, Mapping[str, Handling]], refuse: Refusal) -> Router:
    """Starlette's router over `path -> method -> handling`; unknown paths get `refuse(404)`."""
    routes = [Route(path, _Endpoint(methods, refuse)) for path, methods in table.items()]
    return Router(routes, redirect_slashes=False, default=_NotFound(refuse))


class _Endpoint:
    """One path's handlers by method (405 for other methods)."""

    def __init__(self, methods: Mapping[str, Handling], refuse: Refusal) -> None:
        self.methods, self.refuse = dict(methods), refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = StarletteRequest(scope, receive)
        handling = self.methods.get(request.method)
        if handling is None:
            await send_response(self.refuse(405), scope, receive, send)
            return
        req = Request(request, handling.name)
        response = await anyio.to_thread.run_sync(handling.run, req)
        if response is None:
            raise ConnectionCut
        await send_response(response, scope, receive, send, close=req.close)


class _NotFound:
    def __init__(self, refuse: Refusal) -> None:
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_response(self.refuse(404), scope, receive, send)


async def send_response(
    resp: Response, scope: Scope, receive: Receive, send: Send, *, close: bool = False
) -> None:
    """Status and headers (Content-Length from the body), then the body; ConnectionCut once
    `cut_after` body bytes are out. `close` ends the connection after the answer."""
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in resp.headers.items()
    ]
    bodiless = resp.status in (204, 304)
    if not bodiless:
        length = len(resp.body) if isinstance(resp.body, bytes) else resp.length
        headers.append((b"content-length", str(length).encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    if not (bodiless or scope["method"] == "HEAD") and await _send_body(resp, receive, send):
        raise ConnectionCut
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    if resp.then is not None:
        resp.then()


async def _send_body(resp: Response, receive: Receive, send: Send) -> bool:
    """The body, until it ends or the client goes away; True when `cut_after` cut it short."""
    if isinstance(resp.body, bytes) and resp.cut_after is None:
        if resp.on_sent is not None:
            resp.on_sent(len(resp.body))
        await send({"type": "http.response.body", "body": resp.body, "more_body": True})
        return False
    pieces = iter([resp.body] if isinstance(resp.body, bytes) else resp.body)
    cut = False
    async with anyio.create_task_group() as group:
        group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
        cut = await _send_pieces(pieces, resp, send)
        group.cancel_scope.cancel()
    return cut


async def _send_pieces(pieces: Iterator[bytes], resp: Response, send: Send) -> bool:
    sent, cut = 0, resp.cut_after
    while (chunk := await anyio.to_thread.run_sync(_next, pieces)) is not None:
        piece = chunk if cut is None else chunk[: cut - sent]
        if resp.on_sent is not None:  # Before it goes: a client that has it all sees it counted.
            resp.on_sent(len(piece))
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        sent += len(piece)
        if cut is not None and sent >= cut:
            return True
    return False


def _next(pieces: Iterator[bytes]) -> bytes | None:
    return next(pieces, None)


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Stop pulling pieces for a client that has gone (uvicorn drops what is sent then)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()

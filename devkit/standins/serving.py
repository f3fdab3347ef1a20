"""uvicorn serving a stand-in's ASGI app from a background thread, on a socket bound up front.

The socket is bound when the stand-in is made (port 0 picks a free one), so its URL is known
before it starts and a restart comes back on the same port. Stopping cuts every open connection
instead of waiting for clients to finish, so no handler outlives the stand-in; the app can also
cut its own connection on purpose by raising `ConnectionCut`, as a crashing server would.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import anyio.to_thread
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from devkit.standins.http import ConnectionCut

__all__ = ["BackgroundServer"]

WORKER_THREADS = 200  # handlers block (uploads, slow faults): one thread each, as before
SHUTDOWN_GRACE = 10.0  # seconds for handlers to notice their connection is gone
KEEP_ALIVE = 3600  # seconds an idle connection stays open: clients decide, as with http.server


def _listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn for a stand-in: never the process's signal handlers (uvicorn 0.54 already skips
    them outside the main thread; this holds whatever thread runs it), enough worker threads for
    blocking handlers, and a shutdown that cuts connections rather than waiting for them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        self.cut(None, abort=True)
        tasks = set(self.server_state.tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
            for task in late:
                task.cancel()
        for server in self.servers:
            await server.wait_closed()

    def cut(self, client: tuple[str, int] | None, *, abort: bool = False) -> None:
        """Close the connection from `client` (None: every one); in the event loop's thread.

        `abort` drops unsent bytes too (stopping); otherwise what was written goes out first
        (a response cut off after N bytes)."""
        for connection in list(self.server_state.connections):
            if client is None or getattr(connection, "client", None) == client:
                if abort:
                    connection.transport.abort()
                else:
                    connection.transport.close()


class BackgroundServer:
    """One run of a stand-in's server: made bound, started once, stopped once."""

    def __init__(self, host: str, port: int, name: str) -> None:
        self._sock = _listening_socket(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._name = name
        self._app: ASGIApp | None = None
        self._uvicorn: _Uvicorn | None = None
        self._thread: threading.Thread | None = None

    def start(self, app: ASGIApp) -> None:
        """Serve `app` in a thread of its own; return once it accepts connections."""
        self._app = app
        config = uvicorn.Config(
            self._serve,
            interface="asgi3",
            http="h11",
            ws="none",
            loop="asyncio",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,  # scope["client"] must be the connection's own peer (cut)
            timeout_keep_alive=KEEP_ALIVE,
        )
        server = self._uvicorn = _Uvicorn(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._sock]}, name=self._name, daemon=True
        )
        self._thread.start()
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"{self._name} did not start on port {self.port}")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving, cut open connections and wait for their handlers; free the port."""
        if self._uvicorn is not None and self._thread is not None:
            self._uvicorn.should_exit = True
            self._thread.join()
            self._thread = None
        self._sock.close()

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._app is not None and self._uvicorn is not None
        try:
            await self._app(scope, receive, send)
        except ConnectionCut:
            self._uvicorn.cut(scope.get("client"))
            while (await receive())["type"] != "http.disconnect":
                pass  # What the client still sends is dropped with the connection.

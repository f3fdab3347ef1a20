"""A reverse proxy in front of a real server, as nginx or a load balancer sits in production.

It forwards every request as it came, and can do two things such proxies do: refuse request
bodies over a size (413, like nginx's `client_max_body_size`), and garble successful answers (a
maintenance page with status 200, a cut-off body, JSON of another shape).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from devkit.local_servers import free_port

__all__ = ["GARBLES", "Proxy"]

# What a successful answer may turn into on its way back.
GARBLES: dict[str, tuple[str, bytes]] = {
    "html": ("text/html", b"<html><body>Service temporarily unavailable</body></html>"),
    "cut_off": ("application/json", b'{"items": [{"id": "abc'),
    "list": ("application/json", b"[]"),
    "null": ("application/json", b"null"),
    "wrong_types": ("application/json", b'{"items": "none", "id": 7, "token": 5}'),
}
HOP_BY_HOP = {"connection", "transfer-encoding", "content-length", "keep-alive", "content-encoding"}


class Proxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.max_body: int | None = None
        self.garble: str | None = None
        self.refused: list[int] = []  # sizes of the bodies refused with 413
        self.forwarded = 0
        self._client = httpx.Client(timeout=60)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def _any(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                if proxy.max_body is not None and size > proxy.max_body:
                    proxy.refused.append(size)
                    self.rfile.read(size)  # Drain it, as nginx does, then refuse.
                    self._reply(413, "text/html", b"<html>413 Request Entity Too Large</html>")
                    return
                body = self.rfile.read(size) if size else b""
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}
                }
                answer = proxy._client.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body
                )
                proxy.forwarded += 1
                kind = answer.headers.get("content-type", "application/json")
                content = answer.content
                if proxy.garble is not None and answer.status_code == 200:
                    kind, content = GARBLES[proxy.garble]
                self._reply(answer.status_code, kind, content)

            def _reply(self, status: int, kind: str, content: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        return Handler

"""The machinery both stand-ins share: a loopback HTTP/1.1 server, routing, faults and counters.

Every stand-in also answers control endpoints (`/_standin/stats`, `/_standin/faults`,
`/_standin/reset`, `/_standin/restart`) that do exactly what the Python methods do, so a
stand-in started in another process (the sandbox) can be driven over HTTP the same way tests
drive it in-process.

Besides error statuses, a fault may garble a successful answer, as a proxy or a half-deployed
server would (`garble=`): `invalid_json` (a cut-off body), `html` (an HTML page with status 200),
`drop:<field>` (a field removed, also from each item of an `items` list), or
`header:<name>=<value>` (a header replaced, e.g. a bad `Upload-Offset`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self, cast

from devkit.standins.http import (
    Body,
    ConnectionCut,
    HTTPError,
    Request,
    Response,
    json_response,
)

__all__ = ["Fault", "StandinServer", "rate_limit_headers"]

log = logging.getLogger(__name__)
_COMMON_EXTRAS: dict[str, type] = {
    "retry_after": int,
    "limit": int,
    "message": str,
    "garble": str,
}

Handler = Callable[[Request], Response]


@dataclass
class Fault:
    """One armed fault; `times=None` means it never runs out."""

    target: str
    status: int | None = None
    times: int | None = None
    endpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def matches(self, req: Request) -> bool:
        return self.target in req.subjects and self.endpoint in (None, req.route)


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    func: Handler
    api: bool
    control: bool

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


def _compile(prefix: str, template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", template.rstrip("/"))
    body = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{re.escape(prefix)}{body}/?$")


def rate_limit_headers(retry_after: int, limit: int) -> dict[str, str]:
    """The headers Fathom sends with a 429; both stand-ins use them."""
    return {
        "Retry-After": str(retry_after),
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(retry_after),
    }


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, standin: StandinServer) -> None:
        self.standin = standin
        self.open_sockets: set[socket.socket] = set()
        super().__init__((host, port), _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.standin.lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.standin.lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _any(self) -> None:
        cast(_HTTPServer, self.server).standin.handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _any

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class StandinServer:
    """Base of the stand-ins: subclasses add routes and the hooks marked below."""

    api_prefix: ClassVar[str] = ""
    subject_prefix: ClassVar[str] = ""
    fault_extras: ClassVar[dict[str, type]] = {}  # fault setting -> the type its value has

    def __init__(
        self, port: int = 0, *, host: str = "127.0.0.1", public_host: str | None = None
    ) -> None:
        """Serve on `host:port`; `public_host` is the name clients use (another container's)."""
        self.host = host
        self.public_host = public_host or ("127.0.0.1" if host in ("0.0.0.0", "") else host)
        self.lock = threading.RLock()
        self._routes: list[_Route] = []
        self._faults: list[Fault] = []
        self.calls: Counter[str] = Counter()  # "METHOD /route/{template}" -> requests
        self._key_calls: defaultdict[str, list[float]] = defaultdict(list)
        self._thread: threading.Thread | None = None
        self._httpd = _HTTPServer(host, port, self)
        self.route("GET", "/_standin/stats", lambda req: json_response(200, self.stats()), True)
        self.route("POST", "/_standin/faults", self._post_fault, True)
        self.route("POST", "/_standin/reset", self._post_reset, True)
        self.route("POST", "/_standin/restart", self._post_restart, True)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://{self.public_host}:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        """The API base URL a client is configured with."""
        return self.root_url + self.api_prefix

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open connections, so no handler thread outlives the stand-in."""
        self._stop_serving()

    def _stop_serving(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        with self.lock:
            sockets = list(self._httpd.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def restart(self) -> None:
        """Go down and come back on the same port having forgotten what a real restart loses."""
        port = self._httpd.server_address[1]
        self._stop_serving()
        with self.lock:
            self.forget_on_restart()
        self._httpd = _HTTPServer(self.host, port, self)
        self.start()

    # -- routing ------------------------------------------------------------------------------

    def route(
        self, method: str, template: str, func: Handler, control: bool = False, api: bool = True
    ) -> None:
        """Register `func` for `METHOD template`; API routes live under `api_prefix`."""
        prefix = self.api_prefix if api and not control else ""
        pattern = _compile(prefix, template)
        self._routes.append(_Route(method, template, pattern, func, api, control))

    def _match(self, req: Request) -> tuple[_Route, dict[str, str]]:
        path = req.path
        if self.api_prefix and path.startswith(self.api_prefix + "/_standin/"):
            path = path[len(self.api_prefix) :]
        allowed = False
        for route in self._routes:
            found = route.pattern.match(path)
            if found and route.method == req.method:
                return route, found.groupdict()
            allowed = allowed or found is not None
        raise HTTPError(405 if allowed else 404)

    # -- hooks for subclasses -----------------------------------------------------------------

    def request_key(self, req: Request) -> str | None:
        """The API key the request carries, if any."""
        return None

    def route_subjects(self, req: Request) -> set[str]:
        """Fault targets this request concerns besides `*` and its key (a recording, a video)."""
        return set()

    def admit(self, req: Request) -> None:
        """Raise HTTPError to refuse the request (auth, rate limits); runs after status faults."""

    def error_body(self, status: int, message: str, code: str) -> dict[str, Any]:
        return {"error": message}

    def extra_stats(self) -> dict[str, Any]:
        return {}

    def reset_counters(self) -> None:
        """Clear the subclass's counters; called with the lock held."""

    def forget_on_restart(self) -> None:
        """Drop the state a restart of the real service would lose; called with the lock held."""

    # -- faults -------------------------------------------------------------------------------

    def set_fault(
        self,
        target: str,
        *,
        status: int | None = None,
        times: int | None = None,
        endpoint: str | None = None,
        **extra: Any,
    ) -> None:
        """Arm a fault for `*`, `key:<api key>` or `<subject_prefix>:<id>` requests."""
        scope = target.split(":", 1)[0]
        if target != "*" and (":" not in target or scope not in ("key", self.subject_prefix)):
            raise ValueError(f"bad fault target {target!r}")
        if status is not None and (type(status) is not int or not 400 <= status <= 599):
            raise ValueError(f"bad fault status {status!r}")
        if times is not None and (type(times) is not int or times < 1):
            raise ValueError(f"bad fault times {times!r}")
        kinds = {**_COMMON_EXTRAS, **self.fault_extras}
        for name, value in extra.items():
            kind = kinds.get(name)
            if kind is None or not (type(value) is kind or (kind is float and type(value) is int)):
                raise ValueError(f"bad fault setting {name}={value!r}")
        if status is None and not set(extra) & {*self.fault_extras, "garble"}:
            raise ValueError(
                "a fault needs a status or one of garble, " + ", ".join(self.fault_extras)
            )
        if "garble" in extra:
            _check_garble(extra["garble"])
        with self.lock:
            self._faults.append(Fault(target, status, times, endpoint, dict(extra)))

    def _consume(self, fault: Fault) -> None:
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)

    def take_extra(self, name: str, req: Request) -> Any:
        """The value of fault setting `name` for this request (using up one `times`), or None."""
        with self.lock:
            for fault in self._faults:
                if fault.status is None and name in fault.extra and fault.matches(req):
                    self._consume(fault)
                    return fault.extra[name]
        return None

    def take_count(self, name: str, req: Request) -> bool:
        """True while a counted setting (`expired_links=3`) has uses left; uses one up."""
        with self.lock:
            for fault in self._faults:
                if fault.status is None and fault.extra.get(name, 0) > 0 and fault.matches(req):
                    fault.extra[name] -= 1
                    return True
        return False

    def _status_fault(self, req: Request) -> HTTPError | None:
        with self.lock:
            fault = next((f for f in self._faults if f.status and f.matches(req)), None)
            if fault is None or fault.status is None:
                return None
            self._consume(fault)
        headers = {}
        if fault.status == 429:
            wait = int(fault.extra.get("retry_after", 1))
            headers = rate_limit_headers(wait, int(fault.extra.get("limit", 60)))
        return HTTPError(fault.status, fault.extra.get("message"), headers=headers)

    # -- stats and control --------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self.lock:
            faults = [asdict(f) for f in self._faults]
            return {"calls": dict(self.calls), "faults": faults, **self.extra_stats()}

    def clear_faults(self) -> None:
        """Disarm every fault; keep counters and data."""
        with self.lock:
            self._faults.clear()

    def reset(self) -> None:
        """Clear faults and counters; keep the data (keys, meetings, videos)."""
        with self.lock:
            self._faults.clear()
            self.calls.clear()
            self._key_calls.clear()
            self.reset_counters()

    def _post_fault(self, req: Request) -> Response:
        body = req.json()
        try:
            self.set_fault(**body)
        except (TypeError, ValueError) as exc:
            raise HTTPError(400, str(exc)) from exc
        return json_response(200, {"faults": self.stats()["faults"]})

    def _post_reset(self, req: Request) -> Response:
        self.reset()
        return Response(204)

    def _post_restart(self, req: Request) -> Response:
        threading.Thread(target=self.restart, name="stand-in restart", daemon=True).start()
        return Response(202)

    # -- request handling ---------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        req = Request(handler, Body(handler.rfile, handler.headers))
        try:
            resp = self._respond(req)
        except HTTPError as exc:
            resp = self.error_response(exc)
        except (ConnectionCut, ConnectionError):
            self._drop(handler)
            return
        except Exception:
            log.exception("stand-in handler failed on %s %s", req.method, req.path)
            resp = self.error_response(HTTPError(500))
        req.finish_body()
        try:
            self._write(handler, req, resp)
        except (ConnectionCut, OSError):
            self._drop(handler)

    def _respond(self, req: Request) -> Response:
        route, params = self._match(req)
        req.route, req.params = route.name, params
        if route.control:
            return route.func(req)
        req.key = self.request_key(req)
        req.subjects = {"*", *([f"key:{req.key}"] if req.key else [])} | self.route_subjects(req)
        with self.lock:
            self.calls[route.name] += 1
            if route.api and req.key:
                self._key_calls[req.key].append(time.monotonic())
        fault = self._status_fault(req)
        if fault is not None:
            raise fault
        self.admit(req)
        response = route.func(req)
        garble = self.take_extra("garble", req)
        return _garbled(response, garble) if garble else response

    def error_response(self, exc: HTTPError) -> Response:
        if exc.body is not None:
            return Response(exc.status, exc.body, {"Content-Type": exc.content_type, **exc.headers})
        phrase = HTTPStatus(exc.status).phrase
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        body = self.error_body(exc.status, exc.message or phrase, code)
        return json_response(exc.status, body, exc.headers)

    def _write(self, handler: BaseHTTPRequestHandler, req: Request, resp: Response) -> None:
        chunks: Iterable[bytes] = [resp.body] if isinstance(resp.body, bytes) else resp.body
        length = len(resp.body) if isinstance(resp.body, bytes) else resp.length
        handler.send_response(resp.status)
        for name, value in resp.headers.items():
            handler.send_header(name, value)
        bodiless = resp.status in (204, 304)
        if not bodiless:
            handler.send_header("Content-Length", str(length))
        if req.close:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        if bodiless or req.method == "HEAD":
            return
        sent, cut = 0, resp.cut_after
        for chunk in chunks:
            piece = chunk if cut is None else chunk[: cut - sent]
            handler.wfile.write(piece)
            sent += len(piece)
            if resp.on_sent is not None:
                resp.on_sent(len(piece))
            if cut is not None and sent >= cut:
                raise ConnectionCut
        handler.wfile.flush()

    def _drop(self, handler: BaseHTTPRequestHandler) -> None:
        """Close the connection without a proper ending, as a crashing server would."""
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)

    def key_call_times(self, api_key: str) -> list[float]:
        with self.lock:
            return list(self._key_calls.get(api_key, []))

    def key_call_counts(self) -> dict[str, int]:
        with self.lock:
            return {key: len(times) for key, times in self._key_calls.items()}


def _check_garble(how: str) -> None:
    if how in ("invalid_json", "html") or re.fullmatch(r"drop:\w+|header:[\w-]+=.*", how):
        return
    raise ValueError(f"bad garble {how!r}")


def _garbled(response: Response, how: str) -> Response:
    """The response as a faulty server or a proxy in the way would have sent it."""
    if how.startswith("header:"):
        name, _, value = how.removeprefix("header:").partition("=")
        return Response(response.status, response.body, {**response.headers, name: value})
    if how == "html":
        page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        return Response(200, page, {"Content-Type": "text/html"})
    body = response.body if isinstance(response.body, bytes) else b""
    if how == "invalid_json":
        return Response(response.status, body[: max(1, len(body) // 2)], response.headers)
    field = how.removeprefix("drop:")
    doc = json.loads(body or b"{}")
    for item in [doc, *(doc.get("items") or [])] if isinstance(doc, dict) else []:
        if isinstance(item, dict):
            item.pop(field, None)
    return Response(response.status, json.dumps(doc).encode(), response.headers)

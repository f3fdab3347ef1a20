"""The machinery both stand-ins share: lifecycle, routes, faults, counters, control endpoints.

Every stand-in also answers control endpoints (`/_standin/stats`, `/_standin/faults`,
`/_standin/reset`, `/_standin/restart`) that do exactly what the Python methods do, so a
stand-in started in another process (the sandbox) can be driven over HTTP the same way tests
drive it in-process. Faults are described in `standins.faults`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Any, ClassVar, Self

from devkit.standins.asgi import Handling, build_app
from devkit.standins.faults import Faults, garbled, rate_limit_headers
from devkit.standins.http import ConnectionCut, HTTPError, Response, json_response
from devkit.standins.request import Request
from devkit.standins.serving import BackgroundServer

__all__ = ["StandinServer", "rate_limit_headers"]

log = logging.getLogger(__name__)

Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    func: Handler
    api: bool
    control: bool

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"

    def paths(self, api_prefix: str) -> set[str]:
        """Where it answers: API routes under `api_prefix`, control routes at the root and
        under `api_prefix`, each with or without a trailing slash."""
        prefixes = {"", api_prefix} if self.control else {api_prefix if self.api else ""}
        base = self.template.rstrip("/")
        return {prefix + base + tail for prefix in prefixes for tail in ("", "/")} - {""}


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
        self._faults = Faults(self.lock, self.subject_prefix, self.fault_extras)
        self.calls: Counter[str] = Counter()  # "METHOD /route/{template}" -> requests
        self._key_calls: defaultdict[str, list[float]] = defaultdict(list)
        self._server = BackgroundServer(host, port, type(self).__name__)
        self.route("GET", "/_standin/stats", lambda req: json_response(200, self.stats()), True)
        self.route("POST", "/_standin/faults", self._post_fault, True)
        self.route("POST", "/_standin/reset", self._post_reset, True)
        self.route("POST", "/_standin/restart", self._post_restart, True)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://{self.public_host}:{self._server.port}"

    @property
    def url(self) -> str:
        """The API base URL a client is configured with."""
        return self.root_url + self.api_prefix

    def start(self) -> Self:
        table: defaultdict[str, dict[str, Handling]] = defaultdict(dict)
        for route in self._routes:
            for path in route.paths(self.api_prefix):
                table[path][route.method] = Handling(route.name, partial(self._handle, route))
        self._server.start(build_app(table, lambda status: self.error_response(HTTPError(status))))
        return self

    def stop(self) -> None:
        """Stop serving and cut open connections, so no handler outlives the stand-in."""
        self._stop_serving()

    def _stop_serving(self) -> None:
        self._server.stop()

    def restart(self) -> None:
        """Go down and come back on the same port having forgotten what a real restart loses."""
        port = self._server.port
        self._stop_serving()
        with self.lock:
            self.forget_on_restart()
        self._server = BackgroundServer(self.host, port, type(self).__name__)
        self.start()

    def route(
        self, method: str, template: str, func: Handler, control: bool = False, api: bool = True
    ) -> None:
        """Register `func` for `METHOD template`; API routes live under `api_prefix`."""
        self._routes.append(_Route(method, template, func, api, control))

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
        self._faults.arm(target, status, times, endpoint, **extra)

    def take_extra(self, name: str, req: Request) -> Any:
        """The value of fault setting `name` for this request (using up one `times`), or None."""
        return self._faults.take_extra(name, req)

    def take_count(self, name: str, req: Request) -> bool:
        """True while a counted setting (`expired_links=3`) has uses left; uses one up."""
        return self._faults.take_count(name, req)

    def clear_faults(self) -> None:
        """Disarm every fault; keep counters and data."""
        self._faults.clear()

    # -- stats and control --------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self.lock:
            faults = self._faults.documents()
            return {"calls": dict(self.calls), "faults": faults, **self.extra_stats()}

    def reset(self) -> None:
        """Clear faults and counters; keep the data (keys, meetings, videos)."""
        with self.lock:
            self._faults.clear()
            self.calls.clear()
            self._key_calls.clear()
            self.reset_counters()

    def key_call_times(self, api_key: str) -> list[float]:
        with self.lock:
            return list(self._key_calls.get(api_key, []))

    def key_call_counts(self) -> dict[str, int]:
        with self.lock:
            return {key: len(times) for key, times in self._key_calls.items()}

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
        """202, then the restart (in a thread of its own: it waits for this request to end)."""
        restart = threading.Thread(target=self.restart, name="stand-in restart", daemon=True)
        return Response(202, then=restart.start)

    # -- request handling (in a worker thread) ------------------------------------------------

    def _handle(self, route: _Route, req: Request) -> Response | None:
        """The answer to one request; None drops the connection (a fault, or the client left)."""
        try:
            resp = self._respond(route, req)
        except HTTPError as exc:
            resp = self.error_response(exc)
        except (ConnectionCut, ConnectionError):
            return None
        except Exception:
            log.exception("stand-in handler failed on %s %s", req.method, req.path)
            resp = self.error_response(HTTPError(500))
        req.finish_body()
        return resp

    def _respond(self, route: _Route, req: Request) -> Response:
        if route.control:
            return route.func(req)
        req.key = self.request_key(req)
        req.subjects = {"*", *([f"key:{req.key}"] if req.key else [])} | self.route_subjects(req)
        with self.lock:
            self.calls[route.name] += 1
            if route.api and req.key:
                self._key_calls[req.key].append(time.monotonic())
        fault = self._faults.status_error(req)
        if fault is not None:
            raise fault
        self.admit(req)
        response = route.func(req)
        garble = self.take_extra("garble", req)
        return garbled(response, garble) if garble else response

    def error_response(self, exc: HTTPError) -> Response:
        if exc.body is not None:
            return Response(exc.status, exc.body, {"Content-Type": exc.content_type, **exc.headers})
        phrase = HTTPStatus(exc.status).phrase
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        body = self.error_body(exc.status, exc.message or phrase, code)
        return json_response(exc.status, body, exc.headers)

"""Scripted faults: what a stand-in does wrong, to whom, and how many times.

A fault targets `*`, `key:<api key>` or `<subject>:<id>` (a recording, a video), optionally one
endpoint (`"METHOD /template"`), and either answers with an error `status` or carries settings
the stand-in's handlers take (`render_seconds=`, `cut_after_bytes=`, ...). Besides error
statuses, a fault may garble a successful answer, as a proxy or a half-deployed server would
(`garble=`): `invalid_json` (a cut-off body), `html` (an HTML page with status 200),
`drop:<field>` (a field removed, also from each item of an `items` list), or
`header:<name>=<value>` (a header replaced, e.g. a bad `Upload-Offset`).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from devkit.standins.http import HTTPError, Response

__all__ = ["Fault", "Faults", "garbled", "rate_limit_headers"]

_COMMON_EXTRAS: dict[str, type] = {
    "retry_after": int,
    "retry_after_header": str,  # a 429's wait headers verbatim, as a faulty server sends them
    "limit": int,
    "message": str,
    "garble": str,
}


class Subject(Protocol):
    """What a fault is matched against: the request's targets and route name."""

    subjects: set[str]
    route: str


@dataclass
class Fault:
    """One armed fault; `times=None` means it never runs out."""

    target: str
    status: int | None = None
    times: int | None = None
    endpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def matches(self, req: Subject) -> bool:
        return self.target in req.subjects and self.endpoint in (None, req.route)


def rate_limit_headers(retry_after: int, limit: int) -> dict[str, str]:
    """The headers Fathom sends with a 429; both stand-ins use them."""
    return {
        "Retry-After": str(retry_after),
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(retry_after),
    }


class Faults:
    """The armed faults of one stand-in, guarded by the stand-in's lock (tests arm them from
    their own threads while handlers use them up)."""

    def __init__(self, lock: threading.RLock, subject_prefix: str, extras: dict[str, type]) -> None:
        self._lock = lock
        self._subject_prefix = subject_prefix
        self._extras = extras  # the stand-in's own settings -> the type each value has
        self._armed: list[Fault] = []

    def arm(
        self, target: str, status: int | None, times: int | None, endpoint: str | None, **extra: Any
    ) -> None:
        """Check a fault as the control endpoint would receive it, then arm it."""
        scope = target.split(":", 1)[0]
        if target != "*" and (":" not in target or scope not in ("key", self._subject_prefix)):
            raise ValueError(f"bad fault target {target!r}")
        if status is not None and (type(status) is not int or not 400 <= status <= 599):
            raise ValueError(f"bad fault status {status!r}")
        if times is not None and (type(times) is not int or times < 1):
            raise ValueError(f"bad fault times {times!r}")
        kinds = {**_COMMON_EXTRAS, **self._extras}
        for name, value in extra.items():
            kind = kinds.get(name)
            if kind is None or not (type(value) is kind or (kind is float and type(value) is int)):
                raise ValueError(f"bad fault setting {name}={value!r}")
        if status is None and not set(extra) & {*self._extras, "garble"}:
            raise ValueError("a fault needs a status or one of garble, " + ", ".join(self._extras))
        if "garble" in extra:
            _check_garble(extra["garble"])
        with self._lock:
            self._armed.append(Fault(target, status, times, endpoint, dict(extra)))

    def _consume(self, fault: Fault) -> None:
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self._armed.remove(fault)

    def take_extra(self, name: str, req: Subject) -> Any:
        """The value of fault setting `name` for this request (using up one `times`), or None."""
        with self._lock:
            for fault in self._armed:
                if fault.status is None and name in fault.extra and fault.matches(req):
                    self._consume(fault)
                    return fault.extra[name]
        return None

    def take_count(self, name: str, req: Subject) -> bool:
        """True while a counted setting (`expired_links=3`) has uses left; uses one up."""
        with self._lock:
            for fault in self._armed:
                if fault.status is None and fault.extra.get(name, 0) > 0 and fault.matches(req):
                    fault.extra[name] -= 1
                    return True
        return False

    def status_error(self, req: Subject) -> HTTPError | None:
        """The error an armed status fault answers this request with (using it up), if any."""
        with self._lock:
            fault = next((f for f in self._armed if f.status and f.matches(req)), None)
            if fault is None or fault.status is None:
                return None
            self._consume(fault)
        headers = {}
        if fault.status == 429:
            wait = int(fault.extra.get("retry_after", 1))
            headers = rate_limit_headers(wait, int(fault.extra.get("limit", 60)))
            if "retry_after_header" in fault.extra:
                raw = fault.extra["retry_after_header"]
                headers |= {"Retry-After": raw, "RateLimit-Reset": raw}
        return HTTPError(fault.status, fault.extra.get("message"), headers=headers)

    def documents(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._armed]

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()


def _check_garble(how: str) -> None:
    if how in ("invalid_json", "html") or re.fullmatch(r"drop:\w+|header:[\w-]+=.*", how):
        return
    raise ValueError(f"bad garble {how!r}")


def garbled(response: Response, how: str) -> Response:
    """The response as a faulty server or a proxy in the way would have sent it."""
    if how.startswith("header:"):
        name, _, value = how.removeprefix("header:").partition("=")
        return replace(response, headers={**response.headers, name: value})
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

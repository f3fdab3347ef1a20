"""A local stand-in for Fathom's External API v1, as published (see shared/provider-apis.md).

It serves meetings, transcripts, summaries and the three-step video download (request, poll,
fetch a short-lived signed URL with Range support) over loopback, so the real Fathom client can
be tested end to end, faults included: rendering delays and failures, expired downloads and
links, cut-off transfers, rate limits. Webhooks can be registered and deleted; a meeting that
`finish_meeting` ends is delivered to them signed, with retries (`standins.webhooks`). The download
half (renders, signed links, the storage host) is `standins.fathom_files`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from devkit.standins.base import StandinServer
from devkit.standins.content import (
    action_items_document,
    content_sha256,
    listed_meeting,
    meeting_document,
    summary_document,
    transcript_document,
)
from devkit.standins.fathom_files import Download, FathomFiles
from devkit.standins.faults import rate_limit_headers
from devkit.standins.http import HTTPError, Response, json_response
from devkit.standins.request import Request
from devkit.standins.webhooks import INCLUDES, WebhookSender

__all__ = ["FathomStandin"]

_FIRST_MEETING = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
_WINDOW_SECONDS = 60.0


@dataclass
class Meeting:
    size: int
    audio_only: bool
    created_at: datetime
    doc: dict[str, Any]


def included(req: Request) -> set[str]:
    """The `include_*` flags a listing asked for."""
    return {name for name in INCLUDES if req.flag(name)}


def _time_arg(req: Request, name: str) -> datetime | None:
    raw = req.arg(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise HTTPError(400, f"{name} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class FathomStandin(StandinServer):
    """Fathom External API v1 on 127.0.0.1; `url` ends in `/external/v1` like the real base URL."""

    api_prefix = "/external/v1"
    subject_prefix = "recording"
    fault_extras: ClassVar[dict[str, type]] = {
        "render_seconds": float,
        "render_failure": str,  # "generation_failed" or "generation_timeout"
        "expired_downloads": int,
        "expired_links": int,
        "cut_after_bytes": int,
    }

    def __init__(
        self,
        port: int = 0,
        page_size: int = 10,
        render_seconds: float = 0.0,
        link_ttl_seconds: float = 3600,
        enforce_rate_limit: int | None = None,
        bandwidth: int | None = None,
        webhook_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0),
        **serve: Any,
    ) -> None:
        super().__init__(port, **serve)
        self.webhooks = WebhookSender(webhook_retry_delays)
        self.page_size = page_size
        self.render_seconds = render_seconds
        self.bandwidth = bandwidth  # bytes per second per file connection; None: unlimited
        self.link_ttl_seconds = link_ttl_seconds
        self.enforce_rate_limit = enforce_rate_limit
        self._meetings: dict[str, dict[int, Meeting]] = {}
        self._owners: dict[str, str] = {}  # key -> its owner's e-mail, when not the default
        self._windows: defaultdict[str, deque[float]] = defaultdict(deque)
        self.route("GET", "/meetings", self._list_meetings)
        self.route("GET", "/recordings/{id}/transcript", self._transcript)
        self.route("GET", "/recordings/{id}/summary", self._summary)
        self.files = FathomFiles(self)
        self.route("POST", "/webhooks", self._create_webhook)
        self.route("DELETE", "/webhooks/{webhook_id}", self._delete_webhook)
        self.route("POST", "/_standin/finish", self._post_finish, True)

    @property
    def _downloads(self) -> dict[str, Download]:
        """The renders requested, by download id (tests peek at them under the lock)."""
        return self.files.downloads

    # -- seeding and inspection ---------------------------------------------------------------

    def add_key(self, api_key: str, *, owner_email: str | None = None) -> None:
        with self.lock:
            self._meetings.setdefault(api_key, {})
            if owner_email:
                self._owners[api_key] = owner_email

    def owner_email(self, api_key: str) -> str:
        """The e-mail of the Fathom user the key belongs to (their recordings' `recorded_by`)."""
        with self.lock:
            default = f"user-{hashlib.sha256(api_key.encode()).hexdigest()[:8]}@acme.example"
            return self._owners.get(api_key, default)

    def add_meeting(
        self,
        api_key: str,
        recording_id: int,
        *,
        size: int = 1_000_000,
        title: str | None = None,
        audio_only: bool = False,
        created_at: datetime | None = None,
        team: str | None = None,
        recorded_by: str | None = None,
    ) -> dict[str, Any]:
        """Add a meeting only `api_key` sees; by default each one is an hour newer than the last,
        and recorded by the key's owner (`recorded_by`: a teammate's, shared with them)."""
        email = recorded_by or self.owner_email(api_key)
        with self.lock:
            seeded = sum(len(meetings) for meetings in self._meetings.values())
            created = created_at or _FIRST_MEETING + timedelta(hours=seeded)
            created = created if created.tzinfo else created.replace(tzinfo=UTC)
            doc = meeting_document(
                recording_id,
                size=size,
                title=title or f"Meeting {recording_id}",
                created_at=created,
                owner=(f"User {email.split('@')[0].removeprefix('user-')}", email),
                team=team,
            )
            self._meetings.setdefault(api_key, {})[recording_id] = Meeting(
                size, audio_only, created, doc
            )
        return copy.deepcopy(doc)

    def finish_meeting(
        self, api_key: str, recording_id: int, *, deliveries: int = 1, **meeting: Any
    ) -> list[str]:
        """A meeting of `api_key`'s owner ends now: it is listed, and delivered to the owner's
        webhooks (`deliveries` times as one message). Returns the message ids."""
        doc = self.add_meeting(api_key, recording_id, created_at=datetime.now(UTC), **meeting)
        doc["action_items"] = action_items_document(doc)
        return self.webhooks.deliver(api_key, doc, times=deliveries)

    def call_times(self, api_key: str) -> list[float]:
        """time.monotonic() of every API call made with `api_key` (not file GETs or control)."""
        return self.key_call_times(api_key)

    def expected_sha256(self, recording_id: int) -> str:
        with self.lock:
            sizes = [m[recording_id].size for m in self._meetings.values() if recording_id in m]
        if not sizes:
            raise KeyError(recording_id)
        return content_sha256(recording_id, sizes[0])

    def extra_stats(self) -> dict[str, Any]:
        return {
            "calls_by_key": self.key_call_counts(),
            "bytes_served": self.files.bytes_served,
            "downloads_requested": self.files.downloads_requested,
            "api_key_sent_to_storage": self.files.key_to_storage,
        }

    def reset(self) -> None:
        """Also forget the webhooks: each test registers its own."""
        super().reset()
        self.webhooks.clear()

    def reset_counters(self) -> None:
        self.files.reset_counters()
        self._windows.clear()

    def forget_on_restart(self) -> None:
        """Renders and signed links live in memory: a restart loses them (meetings stay)."""
        self.files.forget()

    # -- hooks ----------------------------------------------------------------------------------

    def request_key(self, req: Request) -> str | None:
        return req.header("X-Api-Key")

    def route_subjects(self, req: Request) -> set[str]:
        if "id" in req.params:
            return {f"recording:{req.params['id']}"}
        recording = self.files.recording_of(req.params.get("token", ""))
        return {f"recording:{recording}"} if recording is not None else set()

    def admit(self, req: Request) -> None:
        if "/_files/" in req.route:
            return
        with self.lock:
            if req.key is None or req.key not in self._meetings:
                raise HTTPError(401, "invalid API key")
            if self.enforce_rate_limit is None:
                return
            now, window = time.monotonic(), self._windows[req.key]
            while window and window[0] <= now - _WINDOW_SECONDS:
                window.popleft()
            if len(window) >= self.enforce_rate_limit:
                wait = max(1, math.ceil(window[0] + _WINDOW_SECONDS - now))
                headers = rate_limit_headers(wait, self.enforce_rate_limit)
                raise HTTPError(429, "rate limit exceeded", headers=headers)
            window.append(now)

    # -- API ------------------------------------------------------------------------------------

    def _list_meetings(self, req: Request) -> Response:
        after, before = _time_arg(req, "created_after"), _time_arg(req, "created_before")
        emails, teams = set(req.args("recorded_by")), set(req.args("teams"))
        domains = set(req.args("calendar_invitees_domains"))
        with self.lock:
            meetings = list(self._meetings.get(req.key or "", {}).values())
        chosen = [
            m
            for m in meetings
            if (after is None or m.created_at > after)
            and (before is None or m.created_at < before)
            and (not emails or m.doc["recorded_by"]["email"] in emails)
            and (not teams or m.doc["recorded_by"]["team"] in teams)
            and (not domains or domains & {i["email_domain"] for i in m.doc["calendar_invitees"]})
        ]
        chosen.sort(key=lambda m: (m.created_at, m.doc["recording_id"]), reverse=True)
        offset = self._cursor_offset(req.arg("cursor"))
        end = offset + self.page_size
        next_cursor = base64.urlsafe_b64encode(str(end).encode()).decode()
        return json_response(
            200,
            {
                "limit": self.page_size,
                "next_cursor": next_cursor if end < len(chosen) else None,
                "items": [listed_meeting(m.doc, included(req)) for m in chosen[offset:end]],
            },
        )

    @staticmethod
    def _cursor_offset(cursor: str | None) -> int:
        if not cursor:
            return 0
        try:
            return int(base64.urlsafe_b64decode(cursor.encode()).decode())
        except (ValueError, binascii.Error):
            raise HTTPError(400, "invalid cursor") from None

    def _create_webhook(self, req: Request) -> Response:
        try:
            registration = self.webhooks.register(req.key or "", req.json())
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        return json_response(201, registration.document())

    def _delete_webhook(self, req: Request) -> Response:
        if not self.webhooks.unregister(req.key or "", req.params["webhook_id"]):
            raise HTTPError(404, "no such webhook")
        return Response(204)

    def _post_finish(self, req: Request) -> Response:
        """Control: `{"api_key", "recording_id", "size"?, "deliveries"?}` ends a meeting now."""
        body = req.json()
        try:
            key, recording = str(body["api_key"]), int(body["recording_id"])
            size, times = int(body.get("size", 1_000_000)), int(body.get("deliveries", 1))
        except (KeyError, TypeError, ValueError):
            raise HTTPError(400, "expected api_key, recording_id, size?, deliveries?") from None
        messages = self.finish_meeting(key, recording, size=size, deliveries=times)
        return json_response(200, {"messages": messages})

    def meeting(self, req: Request) -> Meeting:
        """The recording the request names, if the key sees it (404 otherwise)."""
        raw = req.params["id"]
        with self.lock:
            meeting = self._meetings.get(req.key or "", {}).get(int(raw)) if raw.isdigit() else None
        if meeting is None:
            raise HTTPError(404, "recording not found")
        return meeting

    def _transcript(self, req: Request) -> Response:
        return json_response(200, {"transcript": transcript_document(self.meeting(req).doc)})

    def _summary(self, req: Request) -> Response:
        return json_response(200, {"summary": summary_document(self.meeting(req).doc)})

"""The Fathom stand-in's webhooks: registrations, and signed deliveries with retries.

Fathom delivers a finished meeting to every webhook its owner registered, as the Standard
Webhooks scheme says: headers `webhook-id` (the same on every retry of one message),
`webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256>` over
`{id}.{timestamp}.{body}`, keyed with the registration's `whsec_` secret). A delivery that does
not get a 2xx (refused connection, timeout, 5xx, 4xx) is tried again after each of
`retry_delays`, re-signed with a fresh timestamp, as a real sender does; each attempt is recorded
for tests to inspect.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook as Signer

__all__ = ["Attempt", "Registration", "WebhookSender"]

TRIGGERS = (
    "my_recordings",
    "shared_external_recordings",
    "my_shared_with_team_recordings",
    "shared_team_recordings",
)
INCLUDES = ("include_transcript", "include_summary", "include_action_items", "include_crm_matches")


@dataclass
class Registration:
    id: str
    api_key: str
    url: str
    secret: str
    created_at: datetime
    triggered_for: list[str]
    includes: dict[str, bool]

    def document(self) -> dict[str, Any]:
        """The spec's Webhook object."""
        return {
            "id": self.id,
            "url": self.url,
            "secret": self.secret,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "triggered_for": list(self.triggered_for),
            **self.includes,
        }


@dataclass(frozen=True)
class Attempt:
    webhook_id: str
    message_id: str
    recording_id: int
    status: int | None  # None: no answer (refused, timed out)
    at: float = field(default_factory=time.monotonic)


def validate_registration(body: Any) -> tuple[str, list[str], dict[str, bool]]:
    """(destination_url, triggered_for, includes) from a `POST /webhooks` body, as the spec
    requires it, or ValueError saying what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(body) - {"destination_url", "triggered_for", *INCLUDES}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    url = body.get("destination_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError("destination_url must be an http(s) URL")
    triggers = body.get("triggered_for")
    if not isinstance(triggers, list) or not triggers or not set(triggers) <= set(TRIGGERS):
        raise ValueError(f"triggered_for must be a non-empty list of {', '.join(TRIGGERS)}")
    includes = {name: body.get(name, False) for name in INCLUDES}
    if not all(isinstance(value, bool) for value in includes.values()):
        raise ValueError("include_* must be booleans")
    return url, list(triggers), includes


class WebhookSender:
    def __init__(self, retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)) -> None:
        self.retry_delays = retry_delays
        self.attempts: list[Attempt] = []
        self._registrations: dict[str, Registration] = {}
        self._lock = threading.Lock()

    def register(self, api_key: str, body: Any) -> Registration:
        url, triggers, includes = validate_registration(body)
        registration = Registration(
            id=secrets.token_urlsafe(12),
            api_key=api_key,
            url=url,
            secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
            created_at=datetime.now(UTC),
            triggered_for=triggers,
            includes=includes,
        )
        with self._lock:
            self._registrations[registration.id] = registration
        return registration

    def unregister(self, api_key: str, webhook_id: str) -> bool:
        with self._lock:
            found = self._registrations.get(webhook_id)
            if found is None or found.api_key != api_key:
                return False
            del self._registrations[webhook_id]
            return True

    def registrations(self, api_key: str | None = None) -> list[Registration]:
        with self._lock:
            return [r for r in self._registrations.values() if api_key in (None, r.api_key)]

    def deliver(self, api_key: str, meeting: dict[str, Any], *, times: int = 1) -> list[str]:
        """Send `meeting` to each of the key's webhooks for its own recordings, in background
        threads; `times` > 1 sends the same message (same `webhook-id`) again, as a sender that
        never heard the answer would. Returns the message ids."""
        sent = []
        for registration in self.registrations(api_key):
            if "my_recordings" not in registration.triggered_for:
                continue
            message_id = f"msg_{secrets.token_hex(12)}"
            body = json.dumps(meeting, separators=(",", ":"))
            for _ in range(times):
                threading.Thread(
                    target=self._send,
                    args=(registration, message_id, meeting["recording_id"], body),
                    daemon=True,
                ).start()
            sent.append(message_id)
        return sent

    def _send(self, registration: Registration, message_id: str, recording: int, body: str) -> None:
        for delay in (0.0, *self.retry_delays):
            time.sleep(delay)
            with self._lock:
                if registration.id not in self._registrations:
                    return  # Deleted meanwhile: a real sender stops too.
            status = self._post(registration, message_id, body)
            self.attempts.append(Attempt(registration.id, message_id, recording, status))
            if status is not None and 200 <= status < 300:
                return

    def _post(self, registration: Registration, message_id: str, body: str) -> int | None:
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Signer(registration.secret).sign(message_id, now, body),
        }
        try:
            # A connection per attempt, as deliveries are independent (and threads share no pool).
            answer = httpx.post(registration.url, content=body, headers=headers, timeout=10)
            return answer.status_code
        except httpx.HTTPError:
            return None

    def clear(self) -> None:
        """Forget every registration (deliveries under way stop at their next attempt)."""
        with self._lock:
            self._registrations.clear()
        self.attempts.clear()

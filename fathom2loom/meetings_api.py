"""A signed-in user's Fathom meetings, for the web app: where each stands here (moved, queued,
failed, cancelled, not moved), newest first.

Only this service can list them: the user's Fathom key is stored encrypted and Fathom's rate
budget lives in Redis. The browser asks PocketBase (`GET /api/fathom2loom/meetings`, in
pb_hooks/webapp.pb.js), which knows who is signed in; PocketBase asks this route on the service
(`GET /internal/meetings/<user id>`, served by the `fathom2loom webhooks` process) with a bearer
token derived from PB_ENCRYPTION_KEY, which both hold and nobody else does, and from the user id:
a token seen somewhere opens one user's listing, never another's. The listing is the
CLI's (`user_queue.meeting_states`), with the user's Fathom budget as background work: it leaves
transfers their reserved calls and never waits for budget (a 429 with when to try again).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fathom2loom.api_keys import KeyStore
from fathom2loom.errors import (
    KeyRejected,
    PermanentProviderError,
    PocketBaseError,
    RateLimited,
    TransientProviderError,
    UndecryptableKey,
)
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.dates import parse_date
from fathom2loom.providers.factory import Providers
from fathom2loom.queue_store import QueueStore
from fathom2loom.redact import secret_scope
from fathom2loom.user_queue import MeetingState, meeting_states

__all__ = ["MAX_LIMIT", "MeetingsApi", "internal_token"]

log = logging.getLogger(__name__)
MAX_LIMIT = 500
_USER_ID = re.compile(r"^[a-z0-9]{15}$")
Answer = tuple[int, dict[str, Any]]


def internal_token(encryption_key: bytes, user_id: str) -> str:
    """What PocketBase's hooks send to ask for `user_id`'s meetings, as pb_hooks/webapp.pb.js
    derives it."""
    message = f"fathom2loom internal api:{user_id}".encode()
    return hmac.new(encryption_key.hex().encode(), message, hashlib.sha256).hexdigest()


def _item(state: MeetingState) -> dict[str, Any]:
    meeting = state.meeting
    return {
        "recording_id": str(meeting.recording_id),
        "title": meeting.title,
        "created_at": meeting.created_at.isoformat(),
        "recording_start_time": meeting.recording_start_time.isoformat(),
        "duration_seconds": round(meeting.duration_seconds),
        "state": state.state,
        "loom_url": state.loom_url,
        "share_url": meeting.share_url,
    }


@dataclass
class MeetingsApi:
    pb: PocketBase
    keys: KeyStore
    providers: Providers
    encryption_key: bytes

    def authorized(self, header: str, user_id: str) -> bool:
        expected = f"Bearer {internal_token(self.encryption_key, user_id)}"
        return hmac.compare_digest(header.encode(), expected.encode())

    def answer(self, user_id: str, since: str | None, limit: str | None) -> Answer:
        """The user's meetings (`since`: an ISO date; `limit`: at most MAX_LIMIT). Never raises."""
        if not _USER_ID.match(user_id):
            return 400, {"message": "not a user id"}
        moment = parse_date(since) if since else None
        if since and moment is None:
            return 400, {"message": f"since must be a date like 2026-11-01, not {since[:40]!r}"}
        count = int(limit) if limit and limit.isascii() and limit.isdigit() else 50
        try:
            wanted = min(max(count, 1), MAX_LIMIT)
            items = self._items(user_id, moment, wanted + 1)  # One more: are there more?
            if items is None:
                return 400, {
                    "message": "Save your Fathom key first: the meetings are listed with it"
                }
            return 200, {"items": items[:wanted], "more": len(items) > wanted}
        except UndecryptableKey as exc:
            why = f"Your saved Fathom key cannot be read ({exc.reason}): save it again"
            return 400, {"message": why}
        except KeyRejected as exc:
            return 400, {"message": f"Fathom rejected your key ({exc.status}): save a working one"}
        except RateLimited as exc:
            wait = max(1, round(exc.retry_after or 10))
            why = f"Fathom's rate limit: try again in {wait} s"
            return 429, {"message": why, "retry_after": wait}
        except PermanentProviderError as exc:
            return 400, {"message": exc.user_message}
        except (TransientProviderError, PocketBaseError) as exc:
            log.warning("meetings of user %s not listed: %s", user_id, exc, extra=_about(user_id))
            return 503, {"message": "Fathom or this service is not answering now: try again soon"}
        except Exception:  # A bug must not take the process down: the page says "try again".
            log.exception("meetings of user %s failed unexpectedly", user_id, extra=_about(user_id))
            return 503, {"message": "The meetings could not be listed: try again soon"}

    def _items(
        self, user_id: str, since: datetime | None, limit: int
    ) -> list[dict[str, Any]] | None:
        """The listing; None when the user has no Fathom key saved."""
        key = self.keys.read(user_id, "Fathom")
        if not key:
            return None
        with secret_scope(key):
            fathom = self.providers.fathom(key, background=True)
            found = meeting_states(QueueStore(self.pb), fathom, user_id, limit=limit, since=since)
            return [_item(state) for state in found]


def _about(user_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "component": "web"}

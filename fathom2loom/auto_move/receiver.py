"""The webhook receiver: where Fathom delivers a user's new meeting (`POST /fathom/<user id>`).

A small ASGI app (Starlette, served by uvicorn: `fathom2loom webhooks`). For each delivery, in
this order, so that nothing unverified costs more than a lookup:

1. the user must have a registered webhook (else 404);
2. the Standard Webhooks signature is checked on the raw body with that webhook's secret
   (`standardwebhooks`): a bad or missing signature is a 401, a timestamp more than 5 minutes
   off a 400;
3. the `webhook-id` is remembered in Redis for 15 minutes: the same id again is a 409 (a replay;
   a sender that retries after our 2xx was lost also gets it, and it is harmless: we have it);
4. the body must be a Meeting as Fathom's spec has it (else 400);
5. the meeting is queued unless it ever was (`enqueue`): 201 with the row, or 200.

Refusals create nothing, and cost little (`auto_move.refusals`): they are counted, the first of
each kind in a window is logged (component `webhooks`) and the rest summed up in one line, and a
source refused too often (WEBHOOK_REFUSALS_PER_MINUTE for one user id, twice that in all) gets a
429 before any lookup, except for users it has brought signed deliveries for. When
PocketBase or Redis is away the answer is a 503 and the `webhook-id` is forgotten again, so the
sender's retry gets through; the catch-up poll is the net under both.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import ValidationError
from standardwebhooks import Webhook as Verifier
from standardwebhooks import WebhookVerificationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fathom2loom.auto_move.enqueue import enqueue_new_meeting
from fathom2loom.auto_move.refusals import RefusalGuard
from fathom2loom.auto_move.store import AutoMoveStore, OptedIn
from fathom2loom.errors import PocketBaseError, UndecryptableKey
from fathom2loom.pocketbase.dates import pb_date
from fathom2loom.providers.fathom import Meeting

__all__ = ["MAX_BODY_BYTES", "Receiver", "fathom_route"]

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20  # a Meeting without transcript or summary is a few kB
SEEN_SECONDS = 900  # longer than the 5-minute timestamp tolerance on either side
_USER_ID = re.compile(r"^[a-z0-9]{15}$")
Answer = tuple[int, dict[str, Any]]


class Receiver:
    def __init__(self, store: AutoMoveStore, client: redis.Redis, guard: RefusalGuard) -> None:
        self.store = store
        self.redis = client
        self.guard = guard

    def handle(
        self, user_id: str, headers: Mapping[str, str], body: bytes, source: str = "unknown"
    ) -> Answer:
        """One delivery: its HTTP status and JSON answer. Never raises."""
        message_id = headers.get("webhook-id", "")
        try:
            answer = self._handle(user_id, headers, body, message_id)
        except (PocketBaseError, redis.RedisError) as exc:
            self.guard.release(source, user_id)  # Our outage, not the sender's fault.
            self._forget(user_id, message_id)
            log.warning(
                "webhook for user %s not taken (%s): the sender will retry",
                user_id,
                type(exc).__name__,
                extra=_context(user_id, message_id),
            )
            return 503, {"message": "temporarily unavailable: retry later"}
        except Exception:  # A bug must not cost the delivery: the sender's retry may get through.
            self.guard.release(source, user_id)
            self._forget(user_id, message_id)
            log.exception("webhook for user %s failed unexpectedly", user_id, extra=_about(user_id))
            return 503, {"message": "temporarily unavailable: retry later"}
        if isinstance(answer, _Refusal):
            self.refuse(source, answer, user_id, message_id)
            return answer.status, {"message": answer.why}
        self.guard.release(source, user_id)
        return answer

    def refuse(self, source: str, refusal: _Refusal, user_id: str, message_id: str) -> None:
        self.guard.refused(
            source,
            user_id,
            refusal.status,
            refusal.kind,
            refusal.why,
            _context(user_id, message_id),
        )

    def _handle(
        self, user_id: str, headers: Mapping[str, str], body: bytes, message_id: str
    ) -> Answer | _Refusal:
        row = self.store.row(user_id) if _USER_ID.match(user_id) else None
        try:
            secret = self.store.secret(row) if row else None
        except UndecryptableKey as exc:
            log.error(
                "webhook secret of user %s cannot be decrypted (%s): check PB_ENCRYPTION_KEY",
                user_id,
                exc.reason,
                extra=_context(user_id, message_id),
            )
            return 503, {"message": "temporarily unavailable: retry later"}
        if row is None or secret is None:
            return _Refusal(404, "unknown user", "no webhook is registered for this user")
        try:
            Verifier(secret).verify(body, dict(headers), json_parse=False)
        except WebhookVerificationError as exc:
            if "timestamp" in str(exc):
                return _Refusal(400, "stale", f"stale delivery ({exc})")
            return _Refusal(401, "bad signature", f"bad signature ({exc})")
        except ValueError:
            return _Refusal(401, "bad signature", "bad signature (malformed header)")
        self.guard.delivered(user_id)  # Signed by the user's webhook secret: Fathom's.
        seen = f"f2l:webhooks:seen:{user_id}:{message_id}"
        if not self.redis.set(seen, 1, nx=True, ex=SEEN_SECONDS):
            return _Refusal(409, "replay", "this webhook-id was received already")
        try:
            meeting = Meeting.model_validate(json.loads(body))
        except (ValueError, ValidationError):
            return _Refusal(400, "not a meeting", "the body is not a Fathom meeting")
        user = self.store.is_on(user_id)
        if user is None:
            log.info(
                "webhook for user %s ignored: auto-move is off", user_id, extra=_about(user_id)
            )
            return 200, {"ignored": "auto-move is off for this user"}
        self._learn_the_recorder(user, meeting)
        counts_from = user.counts_from
        if counts_from is not None and meeting.created_at < counts_from:
            return 200, {"ignored": "the meeting is older than auto-move (counts_from)"}
        row_id = enqueue_new_meeting(self.store.pb, user_id, meeting)
        if row_id is None:
            return 200, {"queued": None, "message": "this meeting was queued before"}
        log.info(
            "auto-move: queued meeting %s from Fathom's webhook",
            meeting.recording_id,
            extra={**_about(user_id), "row_id": row_id},
        )
        return 201, {"queued": row_id}

    def _learn_the_recorder(self, user: OptedIn, meeting: Meeting) -> None:
        """The webhook sends the user's own recordings only: its `recorded_by` is who they are
        at Fathom, which the catch-up poll lists by (unless the user said otherwise)."""
        email, row = meeting.recorder_email, user.row
        if row is None or not email or user.fathom_email:
            return
        before = row.recorded_by
        if email.lower() == before.lower():
            return
        changes = {"recorded_by": email}
        counts_from = user.counts_from
        if before and counts_from is not None:  # The poll counted someone else's: look again.
            changes["watermark"] = pb_date(counts_from)
        self.store.update(row, **changes)

    def _forget(self, user_id: str, message_id: str) -> None:
        # If Redis is away the retry is refused as a replay: the catch-up poll finds the meeting.
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(f"f2l:webhooks:seen:{user_id}:{message_id}")


def _about(user_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "component": "webhooks"}


def _context(claimed_user: str, message_id: str) -> dict[str, Any]:
    """What a refusal's log record says: who the delivery claimed to be for (maybe nobody)."""
    return {
        "component": "webhooks",
        "claimed_user_id": claimed_user[:40],
        "webhook_id": message_id[:80],
    }


@dataclass(frozen=True)
class _Refusal:
    status: int
    kind: str  # what the counts and samples group by
    why: str  # the answer's message, and the sample's


def fathom_route(receiver: Receiver) -> Route:
    """`POST /fathom/<user id>`: a source over its refusal budget is answered before anything
    is read or looked up; the body is read up to MAX_BODY_BYTES, then handled in a thread."""

    async def fathom(request: Request) -> JSONResponse:
        user_id = request.path_params["user_id"]
        source = request.client.host if request.client else "unknown"
        message_id = request.headers.get("webhook-id", "")
        wait = receiver.guard.admit(source, user_id)
        if wait is not None:
            why = f"too many refused deliveries from {source}: retry in {wait:.0f} s"
            receiver.refuse(source, _Refusal(429, "rate limited", why), user_id, message_id)
            return JSONResponse(
                {"message": why}, status_code=429, headers={"Retry-After": f"{wait:.0f}"}
            )
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > MAX_BODY_BYTES:
                too_large = _Refusal(413, "too large", "body too large")
                receiver.refuse(source, too_large, user_id, message_id)
                return JSONResponse({"message": too_large.why}, status_code=413)
        status, answer = await run_in_threadpool(
            receiver.handle, user_id, request.headers, bytes(body), source
        )
        return JSONResponse(answer, status_code=status)

    return Route("/fathom/{user_id}", fathom, methods=["POST"])

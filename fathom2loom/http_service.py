"""The service's HTTP process (`fathom2loom webhooks`): Fathom's webhook deliveries, and the calls
PocketBase's hooks make on behalf of signed-in users.

- `POST /fathom/<user id>`: a Fathom webhook delivery (`auto_move.receiver`), the one route meant
  to be published (behind the TLS proxy, at WEBHOOK_PUBLIC_URL);
- `GET /internal/meetings/<user id>`: a user's meetings for the web app (`meetings_api`), for
  PocketBase alone (a bearer token derived from PB_ENCRYPTION_KEY); keep it off the proxy;
- `GET /health`.

Starlette on uvicorn; the blocking work (PocketBase, Redis, Fathom) runs in its thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fathom2loom.api_keys import KeyStore
from fathom2loom.auto_move.receiver import Receiver, fathom_route
from fathom2loom.auto_move.refusals import RefusalGuard
from fathom2loom.auto_move.store import AutoMoveStore
from fathom2loom.keybox import KeyBox
from fathom2loom.logging_setup import configure_logging
from fathom2loom.meetings_api import MeetingsApi
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.providers.factory import Providers
from fathom2loom.redis_client import redis_client
from fathom2loom.settings import Settings

__all__ = ["create_app", "serve"]

log = logging.getLogger(__name__)


def meetings_route(api: MeetingsApi) -> Route:
    async def meetings(request: Request) -> JSONResponse:
        user_id = request.path_params["user_id"]
        if not api.authorized(request.headers.get("authorization", ""), user_id):
            return JSONResponse({"message": "for PocketBase only"}, status_code=401)
        status, answer = await run_in_threadpool(
            api.answer,
            user_id,
            request.query_params.get("since"),
            request.query_params.get("limit"),
        )
        headers = {"Retry-After": str(answer["retry_after"])} if "retry_after" in answer else None
        return JSONResponse(answer, status_code=status, headers=headers)

    return Route("/internal/meetings/{user_id}", meetings, methods=["GET"])


def create_app(receiver: Receiver, meetings: MeetingsApi | None = None) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async def report_refusals() -> None:  # A flood's summary, also once it has stopped.
            while True:
                await asyncio.sleep(min(receiver.guard.report_seconds, 5.0))
                receiver.guard.report()

        task = asyncio.create_task(report_refusals())
        try:
            yield
        finally:
            task.cancel()

    routes = [fathom_route(receiver), Route("/health", health, methods=["GET"])]
    if meetings is not None:
        routes.append(meetings_route(meetings))
    return Starlette(routes=routes, lifespan=lifespan)


def serve(settings: Settings) -> None:
    """Run until stopped: uvicorn on WEBHOOK_LISTEN_HOST:WEBHOOK_LISTEN_PORT, meant to sit behind
    a TLS reverse proxy that publishes `/fathom/` only."""
    import uvicorn

    configure_logging(settings, console_level="INFO")
    pb = PocketBase.from_settings(settings)
    box = KeyBox(settings.encryption_key, settings.previous_encryption_keys)
    redis = redis_client(settings.redis_url)
    guard = RefusalGuard(
        settings.webhook_refusals_per_minute,
        report_seconds=settings.webhook_refusal_report_seconds,
    )
    receiver = Receiver(AutoMoveStore(pb, box), redis, guard)
    meetings = MeetingsApi(
        pb,
        KeyStore(pb, box),
        Providers.from_settings(settings, redis),
        settings.encryption_key,
    )
    log.info(
        "webhook receiver listening on %s:%d",
        settings.webhook_listen_host,
        settings.webhook_listen_port,
    )
    uvicorn.run(
        create_app(receiver, meetings),
        host=settings.webhook_listen_host,
        port=settings.webhook_listen_port,
        access_log=False,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.webhook_trusted_proxies,
        timeout_graceful_shutdown=10,
    )

"""One place where provider HTTP responses and transport faults become our typed errors.

Fathom, Loom and tus calls all go through `send`: it retries transient faults a few times with
the one retry engine (`fathom2loom.retry`), but never sleeps longer than the caller allows
(`RetryPolicy.max_sleep`), so a transfer can record a long wait on its row instead of holding a
worker slot. `read_json` and
`parse` turn a body we cannot read into `ProtocolError`: nothing but our error tree leaves a
client, whatever the server sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from fathom2loom.errors import (
    KeyRejected,
    NotAllowed,
    NothingToDownload,
    ProtocolError,
    ProviderError,
    ProviderRejected,
    RateLimited,
    TemporaryFault,
    TransientProviderError,
)
from fathom2loom.providers.wait_hint import retry_after_seconds
from fathom2loom.retry import Retryable, RetryPolicy, retrying

__all__ = ["RetryPolicy", "error_for", "parse", "read_json", "send"]

Model = TypeVar("Model", bound=BaseModel)


def read_json(response: httpx.Response, provider: str, what: str) -> Any:
    """The body as JSON, or `ProtocolError` naming what we asked for (never the body itself)."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        # Not chained: the cause holds the body, which may hold a signed URL.
        raise ProtocolError(
            provider, f"{provider} sent {what} we cannot read (not JSON: {kind[:40]})"
        ) from None


def parse(model: type[Model], data: Any, provider: str, what: str) -> Model:
    """`data` as `model`, or `ProtocolError` naming the fields that were missing or wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
        # Not chained: pydantic's error quotes the values, a signed URL among them.
        raise ProtocolError(
            provider,
            f"{provider} sent {what} we cannot read (bad or missing: {', '.join(fields)[:120]})",
        ) from None


Kinds = dict[int, type[ProviderError]]
_BY_STATUS: Kinds = {401: KeyRejected, 403: NotAllowed, 422: NothingToDownload}


def error_for(
    provider: str,
    response: httpx.Response,
    messages: dict[int, str] | None = None,
    kinds: Kinds | None = None,
) -> ProviderError:
    """The typed error for a failed response; the message is short, human and secret-free.

    `messages` and `kinds` let a call say what a status means for it (a 404 on a recording is
    `RecordingNotFound`, on a download `DownloadGone`).
    """
    status = response.status_code
    text = (messages or {}).get(status)
    special = (kinds or {}).get(status)
    if special is not None:
        return special(provider, text or f"{provider} answered {status}", status=status)
    if status == 429:
        return RateLimited(
            provider,
            text or f"{provider} rate limit reached (429)",
            status=status,
            retry_after=retry_after_seconds(response),
        )
    if status >= 500 or status in (408, 425):
        return TemporaryFault(
            provider,
            text or f"{provider} had a temporary fault ({status})",
            status=status,
            retry_after=retry_after_seconds(response),
        )
    kind = _BY_STATUS.get(status, ProviderRejected)
    default = {
        404: f"{provider} could not find the item (404)",
        401: f"{provider} rejected the API key (401): update your {provider} key",
        403: f"{provider} refused access (403): check that this key may use the item",
        422: f"{provider} could not process the request (422)",
    }.get(status, f"{provider} rejected the request ({status})")
    return kind(provider, text or default, status=status)


def send(
    http: httpx.Client,
    provider: str,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    messages: dict[int, str] | None = None,
    kinds: Kinds | None = None,
    retry_transport: bool = True,
    before_each: Callable[[], None] | None = None,
    on_rate_limited: Callable[[RateLimited], None] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request; return a 2xx response or raise the typed error once retries are spent.

    `before_each` runs before every attempt (a client-side rate limiter takes its call there);
    `on_rate_limited` hears every 429 (to make other processes back off too).
    """

    def attempt() -> httpx.Response:
        if before_each is not None:
            before_each()
        try:
            response = http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            fault = TemporaryFault(
                provider, f"{provider} could not be reached ({type(exc).__name__})"
            )
            if not retry_transport:
                raise fault from exc
            raise Retryable(fault) from exc
        except httpx.HTTPError as exc:  # Redirect loops, undecodable bodies: not the network.
            raise ProtocolError(
                provider, f"{provider} answered in a way we cannot follow ({type(exc).__name__})"
            ) from exc
        if response.is_success:
            return response
        error = error_for(provider, response, messages, kinds)
        if isinstance(error, RateLimited) and on_rate_limited is not None:
            on_rate_limited(error)
        if not isinstance(error, TransientProviderError):
            raise error
        raise Retryable(error, error.retry_after)

    return retrying(attempt, policy)

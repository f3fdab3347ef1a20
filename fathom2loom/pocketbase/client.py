"""A small synchronous PocketBase client on httpx, logged in as a superuser.

Why our own and not an SDK: we need exactly records CRUD, paging, the batch API and the admin
endpoints bootstrap uses, with our retry policy and typed errors (`fathom2loom.errors`), and a
client that takes its `httpx.Client` from the caller (one per worker process).

Retries: connection faults, 429 and 5xx are retried with jittered backoff. A request that may have
reached the server (a read timeout after sending) is retried only when repeating it is harmless:
reads, updates, deletes, upserts, and batches made of those. Creates are retried only when the
request surely never arrived.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote as urlquote

import httpx

from fathom2loom.errors import (
    PocketBaseBatchFailed,
    PocketBaseForbidden,
    PocketBaseGarbled,
    PocketBaseUnavailable,
    PocketBaseValidation,
)
from fathom2loom.pocketbase import answers
from fathom2loom.pocketbase.admin import AdminEndpoints
from fathom2loom.pocketbase.listing import MAX_PER_PAGE, RecordLists
from fathom2loom.pocketbase.wire import BatchOp, RawJSON, decode, error_of
from fathom2loom.retry import Retryable, RetryPolicy, retrying

if TYPE_CHECKING:
    from fathom2loom.pocketbase.bulk import BulkRoutes

__all__ = ["MAX_PER_PAGE", "BatchOp", "PocketBase", "RawJSON", "Record"]

Record = dict[str, Any]
_SAFE_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_NOT_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout)  # the server, not the request
_RETRY_STATUSES = {429, 500, 502, 503, 504}


class PocketBase(AdminEndpoints, RecordLists):
    """Superuser access to one PocketBase server."""

    def __init__(
        self,
        base_url: str,
        email: str,
        password: str,
        *,
        http: httpx.Client | None = None,
        timeout: float = 15.0,
        retry_attempts: int = 5,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        batch_size: int = 200,
    ) -> None:
        self._http = http or httpx.Client(timeout=timeout)
        self._owns_http = http is None
        self.base_url = base_url.rstrip("/")
        self._email = email
        self._password = password
        self._token: str | None = None
        self._auth_lock = threading.Lock()
        self.retry_attempts = retry_attempts
        self._retry = RetryPolicy(retry_attempts, backoff_base, backoff_cap, max_sleep=math.inf)
        self.batch_size = batch_size
        self._bulk: BulkRoutes | None = None

    @classmethod
    def from_settings(cls, settings: Any, http: httpx.Client | None = None) -> PocketBase:
        return cls(
            settings.pb_url,
            settings.admin_email,
            settings.admin_password,
            http=http,
            timeout=settings.pb_timeout_seconds,
            retry_attempts=settings.pb_retry_attempts,
            batch_size=settings.pb_batch_size,
        )

    @property
    def bulk(self) -> BulkRoutes:
        """Many rows per request through the project's routes (`pocketbase.bulk`)."""
        if self._bulk is None:
            from fathom2loom.pocketbase.bulk import BulkRoutes

            self._bulk = BulkRoutes(self)
        return self._bulk

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> PocketBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # Never show the password or token.
        return f"PocketBase({self.base_url!r}, email={self._email!r})"

    # -- transport --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one API request and return its decoded JSON body (None for 204)."""
        if idempotent is None:
            idempotent = method != "POST"
        if auth and self._token is None:
            self.authenticate()
        response = self._send(method, path, json, params, auth, idempotent)
        if auth and response.status_code in (401, 403):
            # The token may have expired or been revoked: log in again once and repeat.
            self.authenticate(force=True)
            response = self._send(method, path, json, params, auth, idempotent)
        return decode(response, f"{method} {path}")

    def _send(
        self,
        method: str,
        path: str,
        json: Any,
        params: dict[str, Any] | None,
        auth: bool,
        idempotent: bool,
    ) -> httpx.Response:
        """One request, tried again (`fathom2loom.retry`) on a connection fault, 429 or 5xx; a
        request that may have reached PocketBase is tried again only when that is harmless."""
        url, call = f"{self.base_url}{path}", f"{method} {path}"

        def attempt() -> httpx.Response:
            headers = {"Authorization": self._token} if auth and self._token else {}
            body: dict[str, Any] = {"json": json}
            if isinstance(json, RawJSON):  # Already JSON: sent as it is, not encoded again.
                body = {"content": bytes(json)}
                headers["Content-Type"] = "application/json"
            try:
                response = self._http.request(method, url, params=params, headers=headers, **body)
            except httpx.TransportError as exc:
                if not idempotent and not isinstance(exc, _SAFE_ERRORS):
                    raise PocketBaseUnavailable(
                        f"PocketBase {call} failed mid-request ({type(exc).__name__});"
                        " not retried because it may have been applied"
                    ) from exc
                fault = PocketBaseUnavailable(
                    f"PocketBase {call} failed {self.retry_attempts} times (last:"
                    f" {type(exc).__name__})",
                    unreachable=isinstance(exc, _NOT_CONNECTED),
                )
                raise Retryable(fault) from exc
            if response.status_code in _RETRY_STATUSES:
                raise Retryable(error_of(response, call))
            return response

        return retrying(attempt, self._retry)

    def authenticate(self, *, force: bool = False) -> None:
        """Log in as the superuser; concurrent callers share one login."""
        stale = self._token
        with self._auth_lock:
            if self._token is not None and (not force or self._token != stale):
                return
            self._token = None
            try:
                body = self.request(
                    "POST",
                    "/api/collections/_superusers/auth-with-password",
                    json={"identity": self._email, "password": self._password},
                    auth=False,
                    idempotent=True,
                )
            except PocketBaseValidation as exc:
                raise PocketBaseForbidden(
                    exc.status,
                    f"superuser login as {self._email} refused: check PB_ADMIN_EMAIL and"
                    " PB_ADMIN_PASSWORD",
                ) from exc
            self._token = answers.field(body, "token", str, "the superuser login")

    # -- records ----------------------------------------------------------------------------

    def _records(self, collection: str, record_id: str | None = None) -> str:
        path = f"/api/collections/{urlquote(collection)}/records"
        return f"{path}/{urlquote(record_id)}" if record_id else path

    def get(self, collection: str, record_id: str) -> Record:
        path = self._records(collection, record_id)
        return answers.record(self.request("GET", path), f"GET {path}")

    def create(self, collection: str, data: dict[str, Any]) -> Record:
        # A create that carries its own id cannot be applied twice: retrying it is harmless.
        path = self._records(collection)
        body = self.request("POST", path, json=data, idempotent="id" in data)
        return answers.record(body, f"POST {path}")

    def update(self, collection: str, record_id: str, data: dict[str, Any]) -> Record:
        path = self._records(collection, record_id)
        return answers.record(self.request("PATCH", path, json=data), f"PATCH {path}")

    def delete(self, collection: str, record_id: str) -> None:
        self.request("DELETE", self._records(collection, record_id))

    def batch(self, ops: Sequence[BatchOp]) -> list[Any]:
        """Apply writes through the batch API, `batch_size` per transaction, in order.

        Each chunk is all-or-nothing; on failure the error's `index` counts from the first op
        passed here, and the chunks before it stay applied.
        """
        results: list[Any] = []
        for start in range(0, len(ops), self.batch_size):
            chunk = ops[start : start + self.batch_size]
            idempotent = all(op.method != "POST" or "id" in op.body for op in chunk)
            try:
                body = self.request(
                    "POST",
                    "/api/batch",
                    json={"requests": [op.to_request() for op in chunk]},
                    idempotent=idempotent,
                )
            except PocketBaseBatchFailed as exc:
                index = None if exc.index is None else exc.index + start
                raise PocketBaseBatchFailed(
                    exc.status, exc.message, exc.data, index, exc.cause
                ) from exc
            if (
                not isinstance(body, list)
                or len(body) != len(chunk)
                or not all(isinstance(i, dict) for i in body)
            ):
                raise PocketBaseGarbled("POST /api/batch", "a list of results")
            results.extend(item.get("body") for item in body)
        return results

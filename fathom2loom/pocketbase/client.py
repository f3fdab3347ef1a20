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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote as urlquote

import httpx

from fathom2loom.errors import (
    PocketBaseBatchFailed,
    PocketBaseError,
    PocketBaseForbidden,
    PocketBaseGarbled,
    PocketBaseNotFound,
    PocketBaseRequestError,
    PocketBaseUnavailable,
    PocketBaseValidation,
)
from fathom2loom.pocketbase import answers
from fathom2loom.pocketbase.admin import AdminEndpoints
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.retry import Retryable, RetryPolicy, retrying

if TYPE_CHECKING:
    from fathom2loom.pocketbase.bulk import BulkRoutes

__all__ = ["BatchOp", "PocketBase", "RawJSON", "Record"]

Record = dict[str, Any]
MAX_PER_PAGE = 1000  # PocketBase silently caps perPage here.
_SAFE_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_NOT_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout)  # the server, not the request
_RETRY_STATUSES = {429, 500, 502, 503, 504}


class RawJSON(bytes):
    """A request body that is JSON text already (thousands of log records, say)."""


@dataclass(frozen=True)
class BatchOp:
    """One write inside a batch. `PUT` is an upsert and needs `id` (in `body` or here)."""

    method: Literal["POST", "PATCH", "PUT", "DELETE"]
    collection: str
    id: str | None = None
    body: dict[str, Any] = field(default_factory=dict)

    def to_request(self) -> dict[str, Any]:
        url = f"/api/collections/{urlquote(self.collection)}/records"
        body = dict(self.body)
        if self.method in ("PATCH", "DELETE"):
            if not self.id:
                raise ValueError(f"{self.method} in a batch needs a record id")
            url += f"/{urlquote(self.id)}"
        elif self.method == "PUT" and self.id:
            body["id"] = self.id
        request: dict[str, Any] = {"method": self.method, "url": url}
        if self.method != "DELETE":
            request["body"] = body
        return request


class PocketBase(AdminEndpoints):
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
        return _decode(response, f"{method} {path}")

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
                raise Retryable(_error_of(response, call))
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

    def page(
        self,
        collection: str,
        *,
        filter: str | None = None,
        sort: str | None = None,
        page: int = 1,
        per_page: int = 200,
        fields: str | None = None,
    ) -> list[Record]:
        """One page of records, without the total count (PocketBase skips that query)."""
        params: dict[str, Any] = {"page": page, "perPage": min(per_page, MAX_PER_PAGE)}
        params["skipTotal"] = 1
        for key, value in (("filter", filter), ("sort", sort), ("fields", fields)):
            if value:
                params[key] = value
        path = self._records(collection)
        return answers.items(self.request("GET", path, params=params), f"GET {path}")

    def count(self, collection: str, *, filter: str | None = None) -> int:
        """How many records match (one request; PocketBase counts them)."""
        params: dict[str, Any] = {"page": 1, "perPage": 1, "fields": "id"}
        if filter:
            params["filter"] = filter
        path = self._records(collection)
        body = self.request("GET", path, params=params)
        return answers.field(body, "totalItems", int, f"GET {path}")

    def list_all(
        self,
        collection: str,
        *,
        filter: str | None = None,
        sort: str | None = None,
        per_page: int = 500,
        fields: str | None = None,
    ) -> Iterator[Record]:
        """Every matching record, page after page (offset paging).

        Offset paging may skip or repeat rows when the set changes during the walk; use `walk` then.
        """
        per_page = min(per_page, MAX_PER_PAGE)
        page = 1
        while True:
            items = self.page(
                collection, filter=filter, sort=sort, page=page, per_page=per_page, fields=fields
            )
            yield from items
            if len(items) < per_page:
                return
            page += 1

    def walk(
        self,
        collection: str,
        *,
        filter: str | None = None,
        key: str = "id",
        per_page: int = 500,
        fields: str | None = None,
    ) -> Iterator[Record]:
        """Every matching record in ascending (`key`, id) order, paging past the last row seen.

        Stable while rows are added or removed during the walk: none is skipped or repeated.
        """
        per_page = min(per_page, MAX_PER_PAGE)
        sort = "id" if key == "id" else f"{key},id"
        after: str | None = None
        while True:
            where = [f"({filter})"] if filter else []
            if after is not None:
                where.append(after)
            items = self.page(
                collection,
                filter=" && ".join(where) or None,
                sort=sort,
                per_page=per_page,
                fields=fields,
            )
            yield from items
            if len(items) < per_page:
                return
            last = items[-1]
            if key == "id":
                after = pb_filter("id > {:id}", id=last["id"])
            else:
                after = pb_filter(
                    f"({key} > {{:k}} || ({key} = {{:k}} && id > {{:id}}))",
                    k=last[key],
                    id=last["id"],
                )

    def first(self, collection: str, *, filter: str, sort: str | None = None) -> Record | None:
        items = self.page(collection, filter=filter, sort=sort, per_page=1)
        return items[0] if items else None

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


def _decode(response: httpx.Response, call: str) -> Any:
    """Return the JSON body of a success, or raise the typed error for a failure."""
    if response.status_code == 204:
        return None
    if not response.is_success:
        raise _error_of(response, call)
    try:
        return response.json()
    except ValueError as exc:
        raise PocketBaseGarbled(call, "JSON") from exc


def _error_of(response: httpx.Response, call: str) -> PocketBaseError:
    """The typed error for a failed answer."""
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text[:500]}
    status = response.status_code
    message = str(body.get("message", "")) if isinstance(body, dict) else str(body)[:500]
    data = body.get("data") if isinstance(body, dict) else None
    data = data if isinstance(data, dict) else {}
    if status >= 500 or status == 429:
        return PocketBaseUnavailable(f"PocketBase kept failing (HTTP {status}): {message}")
    if status == 400 and isinstance(data.get("requests"), dict):
        return _batch_error(status, message, data)
    if status == 400:
        return PocketBaseValidation(status, message, data)
    if status == 404:
        return PocketBaseNotFound(status, message, data)
    if status in (401, 403):
        return PocketBaseForbidden(status, message, data)
    return PocketBaseRequestError(status, message, data)


def _batch_error(status: int, message: str, data: dict[str, Any]) -> PocketBaseBatchFailed:
    requests: dict[str, Any] = data["requests"]
    key = next(iter(requests), None)
    index = int(key) if key is not None and str(key).isascii() and str(key).isdigit() else None
    detail = requests.get(key, {}) if key is not None else {}
    inner = detail.get("response", {}) if isinstance(detail, dict) else {}
    cause = str(inner.get("message") or detail.get("message") or message)
    fields: dict[str, Any] = inner["data"] if isinstance(inner.get("data"), dict) else {}
    if fields:
        cause += " " + ", ".join(
            f"{name}: {value.get('message', value) if isinstance(value, dict) else value}"
            for name, value in sorted(fields.items())
        )
    return PocketBaseBatchFailed(status, message, fields, index, cause)

"""What crosses the wire to PocketBase: request bodies (`RawJSON`, `BatchOp`), and answers turned
into data or into the error tree (`decode`, `error_of`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
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

__all__ = ["BatchOp", "RawJSON", "decode", "error_of"]


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


def decode(response: httpx.Response, call: str) -> Any:
    """Return the JSON body of a success, or raise the typed error for a failure."""
    if response.status_code == 204:
        return None
    if not response.is_success:
        raise error_of(response, call)
    try:
        return response.json()
    except ValueError as exc:
        raise PocketBaseGarbled(call, "JSON") from exc


def error_of(response: httpx.Response, call: str) -> PocketBaseError:
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

"""The PocketBase endpoints bootstrap needs: health, collections and settings.

A mixin of `PocketBase`, which supplies `request`, the HTTP client and the base URL.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from fathom2loom.errors import PocketBaseGarbled, PocketBaseUnavailable
from fathom2loom.pocketbase import answers
from fathom2loom.pocketbase.requests import Requests

__all__ = ["AdminEndpoints"]

Record = dict[str, Any]


class AdminEndpoints(Requests):
    base_url: str
    _http: httpx.Client

    def healthy(self) -> bool:
        """True when the server answers its health check (no login needed)."""
        try:
            response = self._http.get(f"{self.base_url}/api/health")
        except httpx.TransportError:
            return False
        return response.status_code == 200

    def wait_until_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() >= deadline:
                raise PocketBaseUnavailable(
                    f"PocketBase at {self.base_url} did not answer within {timeout:.0f}s"
                )
            time.sleep(0.2)

    def collections(self) -> list[Record]:
        found: list[Record] = []
        page = 1
        while True:
            body = self.request(
                "GET", "/api/collections", params={"page": page, "perPage": 200, "skipTotal": 1}
            )
            listed = answers.items(body, "GET /api/collections")
            found += listed
            if len(listed) < 200:
                return found
            page += 1

    def import_collections(self, collections: list[dict[str, Any]]) -> None:
        self.request(
            "PUT",
            "/api/collections/import",
            json={"collections": collections, "deleteMissing": False},
        )

    def get_settings(self) -> Record:
        return _settings(self.request("GET", "/api/settings"), "GET /api/settings")

    def update_settings(self, changes: dict[str, Any]) -> Record:
        answer = self.request("PATCH", "/api/settings", json=changes)
        return _settings(answer, "PATCH /api/settings")


def _settings(body: Any, call: str) -> Record:
    """PocketBase's settings: an object with (at least) the `batch` object bootstrap reads."""
    if not isinstance(body, dict) or not isinstance(body.get("batch"), dict):
        raise PocketBaseGarbled(call, "the settings object")
    return body

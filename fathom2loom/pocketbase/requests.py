"""What the PocketBase client's parts (`admin`, `listing`) need of the client itself: one
request, and where a collection's records are. `PocketBase` supplies both."""

from __future__ import annotations

from typing import Any

__all__ = ["Requests"]


class Requests:
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
        raise NotImplementedError  # Supplied by PocketBase.

    def _records(self, collection: str, record_id: str | None = None) -> str:
        raise NotImplementedError  # Supplied by PocketBase.

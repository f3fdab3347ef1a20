"""Reading many records: a page, every page, a stable walk, the first match, a count. A mixin
of `PocketBase`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fathom2loom.pocketbase import answers
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.pocketbase.requests import Requests

__all__ = ["MAX_PER_PAGE", "RecordLists"]

Record = dict[str, Any]
MAX_PER_PAGE = 1000  # PocketBase silently caps perPage here.


class RecordLists(Requests):
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

"""The one owner of `queue` rows: every read and write the service makes of them goes through
`QueueStore`, and every row it hands out is a `QueueRow` (`queue_rows.py`).

So the field names, the statuses and the rules that guard a row live in one place: a cancelled
row is never overwritten by a transfer (PocketBase has no conditional update: the write re-reads
the row first, and a cancel landing in the milliseconds between is seen at the next chunk); a
meeting is queued once while a row for it is active (PocketBase's unique index says so too);
only active rows are cancelled, only failed ones retried, to the back of the line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from fathom2loom.errors import (
    PocketBaseBatchFailed,
    PocketBaseNotFound,
    PocketBaseValidation,
    QueueRefused,
)
from fathom2loom.pocketbase.client import BatchOp, PocketBase
from fathom2loom.pocketbase.dates import now_iso, pb_date
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.queue_rows import (
    ACTIVE,
    COLLECTION,
    DISPATCH_FIELDS,
    QueueRow,
    Status,
    encode_changes,
)

__all__ = ["QueueStore"]

log = logging.getLogger(__name__)
_ACTIVE_FILTER = f'status = "{Status.PENDING}" || status = "{Status.PROCESSING}"'
DUPLICATE_REASON = "Cancelled: another transfer of this meeting was already queued"


class QueueStore:
    def __init__(self, pb: PocketBase) -> None:
        self.pb = pb

    # -- one row, as a transfer reads and writes it ---------------------------------------------

    def get(self, row_id: str) -> QueueRow | None:
        try:
            return QueueRow.from_record(self.pb.get(COLLECTION, row_id))
        except PocketBaseNotFound:
            return None

    def status(self, row_id: str) -> Status | None:
        row = self.get(row_id)
        return None if row is None else row.status

    def save(self, row: QueueRow, **changes: Any) -> None:
        """Write `changes` (`QueueRow` attribute names) and apply them to `row` in memory.

        Status changes go through `save_unless_cancelled`."""
        self.pb.update(COLLECTION, row.id, encode_changes(changes))
        for name, value in changes.items():
            setattr(row, name, value)

    def save_unless_cancelled(self, row: QueueRow, **changes: Any) -> bool:
        """Write `changes` unless the row was cancelled or deleted meanwhile; True when written."""
        current = self.status(row.id)
        if current is None or current == Status.CANCELLED:
            return False
        self.save(row, **changes)
        return True

    # -- a user's rows --------------------------------------------------------------------------

    def of_user(self, user_id: str | None = None) -> list[QueueRow]:
        """A user's rows (all users' when None), newest first."""
        where = pb_filter("user_id = {:u}", u=user_id) if user_id else None
        records = self.pb.list_all(
            COLLECTION, filter=where, sort="-queued_at,-created", per_page=500
        )
        return [QueueRow.from_record(r) for r in records]

    def any_for(self, user_id: str, meeting_id: str) -> QueueRow | None:
        """Any row of the user's for the meeting (`meeting_id` canonical), whatever its status."""
        where = pb_filter("user_id = {:u} && meeting_id = {:m}", u=user_id, m=meeting_id)
        found = self.pb.first(COLLECTION, filter=where)
        return None if found is None else QueueRow.from_record(found)

    def count_active(self, user_id: str) -> int:
        """How many of the user's rows are pending or processing."""
        where = pb_filter("user_id = {:u}", u=user_id) + f" && ({_ACTIVE_FILTER})"
        return self.pb.count(COLLECTION, filter=where)

    def add(
        self, user_id: str, meeting_id: str, *, recorded_at: datetime | None = None
    ) -> QueueRow:
        """A new pending row (`meeting_id` canonical); `PocketBaseValidation` when the meeting
        has an active row already (the unique index) or PocketBase refuses it otherwise."""
        body: dict[str, Any] = {
            "user_id": user_id,
            "meeting_id": meeting_id,
            "status": Status.PENDING,
            "queued_at": now_iso(),
        }
        if recorded_at is not None:
            body["recorded_at"] = pb_date(recorded_at)
        return QueueRow.from_record(self.pb.create(COLLECTION, body))

    def add_once(
        self, user_id: str, meeting_id: str, *, recorded_at: datetime | None = None
    ) -> QueueRow | None:
        """A new pending row unless the meeting has any row at all (None then), also when
        another path queued it a moment ago (the unique index on active rows)."""
        if self.any_for(user_id, meeting_id) is not None:
            return None
        try:
            return self.add(user_id, meeting_id, recorded_at=recorded_at)
        except PocketBaseValidation:
            if self.any_for(user_id, meeting_id) is not None:
                return None
            raise  # Refused for another reason: said, never taken for "queued".

    def cancel(self, row_id: str) -> QueueRow:
        """Cancel a pending or processing row (its transfer stops at the next chunk)."""
        row = self._get_or_refuse(row_id)
        if row.status not in ACTIVE:
            raise QueueRefused(
                f"row {row_id} is {row.status}: only pending or processing rows can be cancelled"
            )
        body = {"status": Status.CANCELLED, "position": 0}
        return QueueRow.from_record(self.pb.update(COLLECTION, row_id, body))

    def retry(self, row_id: str) -> QueueRow:
        """A failed row back to pending, at the back of the line (as a user's own retry goes,
        pb_hooks/queue.pb.js); the dispatcher clears its old end when it reads it."""
        row = self._get_or_refuse(row_id)
        if row.status != Status.FAILED:
            raise QueueRefused(f"row {row_id} is {row.status}: only failed rows can be retried")
        body = {"status": Status.PENDING, "queued_at": now_iso()}
        return QueueRow.from_record(self.pb.update(COLLECTION, row_id, body))

    def _get_or_refuse(self, row_id: str) -> QueueRow:
        row = self.get(row_id)
        if row is None:
            raise QueueRefused(f"row {row_id} does not exist")
        return row

    # -- the dispatcher's view ------------------------------------------------------------------

    def active(self) -> list[QueueRow]:
        """The pending and processing rows with the dispatcher's fields, in one answer built by
        SQLite (`pocketbase.bulk`), or paged through the records API without the hooks."""
        found = self.pb.bulk.active_rows(DISPATCH_FIELDS)
        if found is None:
            found = list(
                self.pb.walk(
                    COLLECTION,
                    filter=_ACTIVE_FILTER,
                    fields=",".join(DISPATCH_FIELDS),
                    per_page=1000,
                )
            )
        return [QueueRow.from_record(r) for r in found]

    def write_positions(self, changes: dict[str, int]) -> int:
        """Each row's place in line, in bulk; rows deleted meanwhile are passed over."""
        if not changes:
            return 0
        written = self.pb.bulk.positions(changes)
        if written is None:
            ops = [
                BatchOp("PATCH", COLLECTION, id=i, body={"position": n}) for i, n in changes.items()
            ]
            written = self._batch_skipping_gone(ops)
        return written

    def clear_old_ends(self, rows: Iterable[QueueRow]) -> None:
        """A retried row's end of its previous run (`completed_at`, `error_message`) cleared."""
        body = {"completed_at": "", "error_message": ""}
        ops = [BatchOp("PATCH", COLLECTION, id=r.id, body=body) for r in rows]
        if not ops:
            return
        try:
            self.pb.batch(ops)
        except PocketBaseBatchFailed:  # A row went away meanwhile: the next sync tries again.
            log.info("sync: a retried row changed under the clean-up; the next sync redoes it")

    def _batch_skipping_gone(self, ops: list[BatchOp]) -> int:
        written = 0
        while ops:
            try:
                self.pb.batch(ops)
                return written + len(ops)
            except PocketBaseBatchFailed as exc:
                if exc.index is None:
                    raise
                # Chunks before the failing one are applied; skip the failing row and go on.
                chunk_start = exc.index - exc.index % self.pb.batch_size
                written += chunk_start
                ops = ops[chunk_start : exc.index] + ops[exc.index + 1 :]
        return written

    # -- repairs --------------------------------------------------------------------------------

    def cancel_active_duplicates(self) -> int:
        """What the waits migration does in SQL, through the API: one active row per meeting.

        The unique index it adds cannot be created while two active rows of a user share a
        meeting; the row already processing (else the oldest) is kept."""
        kept: set[tuple[str, str]] = set()
        extra: list[QueueRow] = []
        for row in sorted(self._walk_active(), key=_keep_first):
            key = (row.user_id, row.meeting_id)
            if key in kept:
                extra.append(row)
            kept.add(key)
        body = {"status": Status.CANCELLED, "position": 0, "error_message": DUPLICATE_REASON}
        self.pb.batch([BatchOp("PATCH", COLLECTION, id=r.id, body=body) for r in extra])
        return len(extra)

    def _walk_active(self) -> Iterator[QueueRow]:
        for record in self.pb.walk(COLLECTION, filter=_ACTIVE_FILTER, per_page=1000):
            yield QueueRow.from_record(record)


def _keep_first(row: QueueRow) -> tuple[bool, str, str]:
    return (row.status != Status.PROCESSING, row.queued_at, row.id)

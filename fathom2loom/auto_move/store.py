"""The auto-move state in PocketBase: who turned it on (`user_meta`), and what the service keeps
for each of them (`auto_move`: the webhook, its secret encrypted, the poll's watermark, a status
the user reads)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fathom2loom.errors import PocketBaseValidation
from fathom2loom.keybox import Field, KeyBox
from fathom2loom.pocketbase.client import PocketBase, Record
from fathom2loom.pocketbase.dates import now_iso, parse_date, pb_date
from fathom2loom.pocketbase.filters import pb_filter

__all__ = ["COLLECTION", "AutoMoveStore", "OptedIn", "row_counts_from"]

COLLECTION = "auto_move"
SECRET_FIELD: Field = "encrypted_secret"


@dataclass(frozen=True)
class OptedIn:
    """A user who turned auto-move on, with what the service keeps for them (None: nothing yet)."""

    user_id: str
    since: datetime | None  # meetings created from then count; None: from when it was turned on
    row: Record | None
    changed_at: datetime | None = None  # the user's last change to user_meta: at or after turn-on
    fathom_email: str | None = None  # set by the user when Fathom knows them by another e-mail

    @classmethod
    def from_meta(cls, meta: Record, row: Record | None) -> OptedIn:
        return cls(
            meta["user_id"],
            parse_date(meta.get("auto_move_since")),
            row,
            parse_date(meta.get("updated")),
            _email(meta.get("fathom_email")),
        )

    @property
    def counts_from(self) -> datetime | None:
        """Meetings created before this are never queued by auto-move (None: not started yet)."""
        if self.since is not None:
            return self.since
        return None if self.row is None else row_counts_from(self.row)


def row_counts_from(row: Record) -> datetime | None:
    """What the row counts from (rows made before `counts_from` existed: from when made)."""
    return parse_date(row.get("counts_from")) or parse_date(row.get("created"))


def _email(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


class AutoMoveStore:
    def __init__(self, pb: PocketBase, box: KeyBox) -> None:
        self.pb = pb
        self._box = box

    def survey(self) -> tuple[list[OptedIn], list[Record]]:
        """The users with auto-move on, and the `auto_move` rows of users who turned it off (or
        whose user_meta is gone): one read of each collection."""
        rows = {r["user_id"]: r for r in self.pb.walk(COLLECTION)}
        on = [
            OptedIn.from_meta(meta, rows.pop(meta["user_id"], None))
            for meta in self.pb.walk("user_meta", filter="auto_move = true")
        ]
        return on, list(rows.values())

    def opted_in(self) -> list[OptedIn]:
        return self.survey()[0]

    def row(self, user_id: str) -> Record | None:
        return self.pb.first(COLLECTION, filter=pb_filter("user_id = {:u}", u=user_id))

    def is_on(self, user_id: str) -> OptedIn | None:
        meta = self.pb.first("user_meta", filter=pb_filter("user_id = {:u}", u=user_id))
        if not meta or not meta.get("auto_move"):
            return None
        return OptedIn.from_meta(meta, self.row(user_id))

    def start(self, user: OptedIn) -> Record:
        """The user's row, made when the service first sees auto-move on. It counts from the
        user's `since`, else from when they turned it on (their user_meta change), so a meeting
        that ended before the service got round to it is still theirs to move."""
        if user.row is not None:
            return user.row
        start = user.since or user.changed_at
        counts_from = now_iso() if start is None else pb_date(start)
        fields = {"user_id": user.user_id, "counts_from": counts_from, "watermark": counts_from}
        try:
            return self.pb.create(COLLECTION, {**fields, "status": "starting"})
        except PocketBaseValidation:  # The other auto-move task made it a moment ago.
            made = self.row(user.user_id)
            if made is None:
                raise
            return made

    def recorder(self, user: OptedIn, row: Record) -> str | None:
        """The Fathom account whose recordings count: what the user set, else what Fathom's
        webhook deliveries named (or what was used before), else the e-mail the user signs in
        with. Kept as given: Fathom's filter may care about case; comparisons do not."""
        known = user.fathom_email or _email(row.get("recorded_by"))
        if known:
            return known
        account = self.pb.first("users", filter=pb_filter("id = {:u}", u=user.user_id))
        return _email((account or {}).get("email"))

    def update(self, row: Record, **fields: Any) -> Record:
        changed = {k: v for k, v in fields.items() if row.get(k) != v}
        return self.pb.update(COLLECTION, row["id"], changed) if changed else row

    def remove(self, row: Record) -> None:
        self.pb.delete(COLLECTION, row["id"])

    def registered_for(self, api_key: str, url: str) -> list[str]:
        """Which key and URL a webhook was made for, as stored in `registered_for`: the HMAC
        under the current key first; then those under previous keys and the plain hash of
        releases before it, which still mean "the same" (rewritten, not registered again)."""
        made = self._box.fingerprints("webhook", api_key, url, length=32)
        legacy = hashlib.sha256(f"fathom2loom webhook\0{api_key}\0{url}".encode())
        return [*made, legacy.hexdigest()[:32]]

    def seal(self, user_id: str, secret: str) -> str:
        return self._box.encrypt(secret, user_id=user_id, field=SECRET_FIELD)

    def secret(self, row: Record) -> str | None:
        """The webhook's signing secret, None when there is none; `UndecryptableKey` if damaged."""
        token = row.get(SECRET_FIELD) or ""
        if not token:
            return None
        return self._box.decrypt(token, user_id=row["user_id"], field=SECRET_FIELD)

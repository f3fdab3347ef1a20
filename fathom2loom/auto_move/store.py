"""The auto-move state in PocketBase: who turned it on (`user_meta`), and what the service keeps
for each of them (`auto_move`: the webhook, its secret encrypted, the poll's watermark, a status
the user reads). `AutoMoveStore` is the one owner of both collections' auto-move fields; the rest
of the package sees them as `UserMeta`, `OptedIn` and `AutoMoveRow`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from fathom2loom.errors import PocketBaseValidation
from fathom2loom.keybox import Field, KeyBox
from fathom2loom.pocketbase.client import PocketBase, Record
from fathom2loom.pocketbase.dates import now_iso, parse_date, pb_date
from fathom2loom.pocketbase.filters import pb_filter

__all__ = ["COLLECTION", "AutoMoveRow", "AutoMoveStore", "OptedIn", "UserMeta"]

COLLECTION, META = "auto_move", "user_meta"
SECRET_FIELD: Field = "encrypted_secret"


@dataclass(frozen=True)
class AutoMoveRow:
    """A typed `auto_move` record: what the service keeps for a user who turned auto-move on."""

    id: str
    user_id: str
    status: str = ""  # what the user reads: on, waiting for a key, why not
    webhook_id: str = ""
    encrypted_secret: str = ""  # the webhook's signing secret, sealed (`AutoMoveStore.secret`)
    destination_url: str = ""
    registered_for: str = ""  # a keyed fingerprint of the key and URL the webhook was made for
    watermark: str = ""  # the catch-up poll has seen every meeting created before this
    polled_at: str = ""
    counts_from: str = ""  # meetings created before this are never queued by auto-move
    recorded_by: str = ""  # the Fathom account whose recordings count
    created: str = ""

    @classmethod
    def from_record(cls, record: Record) -> AutoMoveRow:
        return cls(**{f.name: str(record.get(f.name) or "") for f in fields(cls)})

    @property
    def since(self) -> datetime | None:
        """What the row counts from (rows made before `counts_from` existed: from when made)."""
        return parse_date(self.counts_from) or parse_date(self.created)


@dataclass(frozen=True)
class UserMeta:
    """The part of a user's `user_meta` record auto-move reads: the user's own settings."""

    user_id: str
    auto_move: bool = False
    auto_move_since: datetime | None = None  # meetings created from then count
    fathom_email: str | None = None  # set when Fathom knows the user by another e-mail
    updated: datetime | None = None

    @classmethod
    def from_record(cls, record: Record) -> UserMeta:
        return cls(
            user_id=str(record["user_id"]),
            auto_move=record.get("auto_move") is True,
            auto_move_since=parse_date(record.get("auto_move_since")),
            fathom_email=_email(record.get("fathom_email")),
            updated=parse_date(record.get("updated")),
        )


@dataclass(frozen=True)
class OptedIn:
    """A user who turned auto-move on, with what the service keeps for them (None: nothing yet)."""

    user_id: str
    since: datetime | None  # meetings created from then count; None: from when it was turned on
    row: AutoMoveRow | None
    changed_at: datetime | None = None  # the user's last change to user_meta: at or after turn-on
    fathom_email: str | None = None  # set by the user when Fathom knows them by another e-mail

    @classmethod
    def from_meta(cls, meta: UserMeta, row: AutoMoveRow | None) -> OptedIn:
        return cls(meta.user_id, meta.auto_move_since, row, meta.updated, meta.fathom_email)

    @property
    def counts_from(self) -> datetime | None:
        """Meetings created before this are never queued by auto-move (None: not started yet)."""
        if self.since is not None:
            return self.since
        return None if self.row is None else self.row.since


def _email(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


class AutoMoveStore:
    def __init__(self, pb: PocketBase, box: KeyBox) -> None:
        self.pb = pb
        self._box = box

    def survey(self) -> tuple[list[OptedIn], list[AutoMoveRow]]:
        """The users with auto-move on, and the `auto_move` rows of users who turned it off (or
        whose user_meta is gone): one read of each collection."""
        rows = {r.user_id: r for r in map(AutoMoveRow.from_record, self.pb.walk(COLLECTION))}
        metas = map(UserMeta.from_record, self.pb.walk(META, filter="auto_move = true"))
        on = [OptedIn.from_meta(meta, rows.pop(meta.user_id, None)) for meta in metas]
        return on, list(rows.values())

    def opted_in(self) -> list[OptedIn]:
        return self.survey()[0]

    def row(self, user_id: str) -> AutoMoveRow | None:
        found = self.pb.first(COLLECTION, filter=pb_filter("user_id = {:u}", u=user_id))
        return None if found is None else AutoMoveRow.from_record(found)

    def reread(self, row: AutoMoveRow) -> AutoMoveRow:
        """The row as PocketBase has it now (`PocketBaseNotFound` when it is gone)."""
        return AutoMoveRow.from_record(self.pb.get(COLLECTION, row.id))

    def is_on(self, user_id: str) -> OptedIn | None:
        found = self.pb.first(META, filter=pb_filter("user_id = {:u}", u=user_id))
        meta = None if found is None else UserMeta.from_record(found)
        if meta is None or not meta.auto_move:
            return None
        return OptedIn.from_meta(meta, self.row(user_id))

    def start(self, user: OptedIn) -> AutoMoveRow:
        """The user's row, made when the service first sees auto-move on. It counts from the
        user's `since`, else from when they turned it on (their user_meta change), so a meeting
        that ended before the service got round to it is still theirs to move."""
        if user.row is not None:
            return user.row
        start = user.since or user.changed_at
        counts_from = now_iso() if start is None else pb_date(start)
        values = {"user_id": user.user_id, "counts_from": counts_from, "watermark": counts_from}
        try:
            return AutoMoveRow.from_record(
                self.pb.create(COLLECTION, {**values, "status": "starting"})
            )
        except PocketBaseValidation:  # The other auto-move task made it a moment ago.
            made = self.row(user.user_id)
            if made is None:
                raise
            return made

    def recorder(self, user: OptedIn, row: AutoMoveRow) -> str | None:
        """The Fathom account whose recordings count: what the user set, else what Fathom's
        webhook deliveries named (or what was used before), else the e-mail the user signs in
        with. Kept as given: Fathom's filter may care about case; comparisons do not."""
        known = user.fathom_email or _email(row.recorded_by)
        if known:
            return known
        account = self.pb.first("users", filter=pb_filter("id = {:u}", u=user.user_id))
        return _email((account or {}).get("email"))

    def update(self, row: AutoMoveRow, **changes: str) -> AutoMoveRow:
        """Write what differs of `changes` (`AutoMoveRow` field names); the row as it is then."""
        changed = {k: v for k, v in changes.items() if getattr(row, k) != v}
        if not changed:
            return row
        return AutoMoveRow.from_record(self.pb.update(COLLECTION, row.id, changed))

    def remove(self, row: AutoMoveRow) -> None:
        self.pb.delete(COLLECTION, row.id)

    def registered_for(self, api_key: str, url: str) -> list[str]:
        """Which key and URL a webhook was made for, as stored in `registered_for`: the HMAC
        under the current key first; then those under previous keys and the plain hash of
        releases before it, which still mean "the same" (rewritten, not registered again)."""
        made = self._box.fingerprints("webhook", api_key, url, length=32)
        legacy = hashlib.sha256(f"fathom2loom webhook\0{api_key}\0{url}".encode())
        return [*made, legacy.hexdigest()[:32]]

    def seal(self, user_id: str, secret: str) -> str:
        return self._box.encrypt(secret, user_id=user_id, field=SECRET_FIELD)

    def secret(self, row: AutoMoveRow) -> str | None:
        """The webhook's signing secret, None when there is none; `UndecryptableKey` if damaged."""
        if not row.encrypted_secret:
            return None
        return self._box.decrypt(row.encrypted_secret, user_id=row.user_id, field=SECRET_FIELD)

"""The `api_keys` collection: users' provider keys, stored encrypted, read back in memory only.

Storing (`store_keys`), reading for a transfer (`KeyStore`), the checks' results (`SavedKeys`,
`record_checks`) and re-encrypting after a rotation (`rotate_keys`) all live here, so the field
names and the encryption format have one owner.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Literal

from fathom2loom.errors import UnknownUser
from fathom2loom.keybox import Field, KeyBox, UndecryptableKey
from fathom2loom.pocketbase.client import BatchOp, PocketBase, Record
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.providers.key_text import require_usable_key

__all__ = [
    "COLLECTION",
    "FIELDS",
    "KeyStore",
    "RotationReport",
    "SavedKeys",
    "find_user",
    "record_checks",
    "rotate_keys",
    "saved_keys",
    "store_keys",
]

COLLECTION = "api_keys"
FIELDS: tuple[Field, ...] = ("encrypted_fathom", "encrypted_loom")
Provider = Literal["Fathom", "Loom"]
_FIELD_OF: dict[Provider, Field] = {"Fathom": "encrypted_fathom", "Loom": "encrypted_loom"}


@dataclass(frozen=True)
class SavedKeys:
    """A typed `api_keys` record: a user's sealed keys and what their last check found."""

    id: str
    user_id: str
    encrypted_fathom: str = ""
    encrypted_loom: str = ""
    fathom_check: str = ""  # what the last check of the Fathom key found, as the user reads it
    loom_check: str = ""
    checked_for: str = ""  # which stored values the checks were made for (`key_check`)

    @classmethod
    def from_record(cls, record: Record) -> SavedKeys:
        return cls(**{f.name: str(record.get(f.name) or "") for f in fields(cls)})

    def sealed(self, provider: Provider) -> str:
        """The provider's key as stored (encrypted), "" when none is."""
        return self.encrypted_fathom if provider == "Fathom" else self.encrypted_loom

    def check(self, provider: Provider) -> str:
        return self.fathom_check if provider == "Fathom" else self.loom_check


def saved_keys(pb: PocketBase) -> Iterator[SavedKeys]:
    """Every user's saved keys."""
    for record in pb.walk(COLLECTION):
        yield SavedKeys.from_record(record)


def record_checks(pb: PocketBase, keys: SavedKeys, results: dict[str, str]) -> None:
    """Write what a check found (`fathom_check`, `loom_check`, `checked_for`)."""
    pb.update(COLLECTION, keys.id, results)


class KeyStore:
    """A user's decrypted keys, for the task that needs them (never cached, never logged)."""

    def __init__(self, pb: PocketBase, box: KeyBox) -> None:
        self._pb = pb
        self._box = box

    def __repr__(self) -> str:
        return f"KeyStore({self._box!r})"

    def saved(self, user_id: str) -> SavedKeys | None:
        record = self._pb.first(COLLECTION, filter=pb_filter("user_id = {:u}", u=user_id))
        return None if record is None else SavedKeys.from_record(record)

    def read(self, user_id: str, provider: Provider) -> str | None:
        """The plaintext key, None when none is stored; `UndecryptableKey` when it is damaged."""
        saved = self.saved(user_id)
        token = "" if saved is None else saved.sealed(provider)
        if not token:
            return None
        return self._box.decrypt(token, user_id=user_id, field=_FIELD_OF[provider])


def find_user(pb: PocketBase, who: str) -> Record:
    """A user by id or e-mail address."""
    expression = "email = {:who}" if "@" in who else "id = {:who}"
    user = pb.first("users", filter=pb_filter(expression, who=who))
    if user is None:
        raise UnknownUser(f"no user {who!r}")
    return user


def store_keys(
    pb: PocketBase, box: KeyBox, user_id: str, *, fathom: str | None, loom: str | None
) -> Record:
    """Encrypt and store the given keys (None leaves a stored key as it is); a key no header can
    carry is refused, as the hooks refuse it from users."""
    changes: dict[str, str] = {}
    for name, provider, value in zip(FIELDS, ("Fathom", "Loom"), (fathom, loom), strict=True):
        if value:
            require_usable_key(provider, value.strip())
            changes[name] = box.encrypt(value.strip(), user_id=user_id, field=name)
    existing = pb.first(COLLECTION, filter=pb_filter("user_id = {:u}", u=user_id))
    if existing is None:
        return pb.create(COLLECTION, {"user_id": user_id, **changes})
    return pb.update(COLLECTION, existing["id"], changes) if changes else existing


@dataclass
class RotationReport:
    rows: int = 0
    reencrypted: int = 0
    undecryptable: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"re-encrypted {self.reencrypted} keys in {self.rows} rows"
        if self.undecryptable:
            text += f"; {len(self.undecryptable)} could not be decrypted (rows: "
            text += ", ".join(self.undecryptable) + ")"
        return text


def rotate_keys(pb: PocketBase, box: KeyBox) -> RotationReport:
    """Re-encrypt every stored key as f2l1 under the current key; safe to run again.

    Values written by PocketBase's hook (f2l2), under an earlier key, or left in clear by a
    PocketBase that had no hooks, are all rewritten; so are the Fathom webhook secrets kept for
    auto-move (`auto_move.encrypted_secret`).
    """
    report = RotationReport()
    encrypted: tuple[tuple[str, tuple[Field, ...]], ...] = (
        (COLLECTION, FIELDS),
        ("auto_move", ("encrypted_secret",)),
    )
    for collection, sealed in encrypted:
        ops: list[BatchOp] = []
        for row in pb.walk(collection):
            report.rows += 1
            changes = _reencrypted(box, row, sealed, report)
            if changes:
                ops.append(BatchOp("PATCH", collection, id=row["id"], body=changes))
        pb.batch(ops)
    return report


def _reencrypted(
    box: KeyBox, row: Record, fields: tuple[Field, ...], report: RotationReport
) -> dict[str, str]:
    changes: dict[str, str] = {}
    for name in fields:
        token = (row.get(name) or "").strip()
        if not token or not box.needs_rotation(token):
            continue
        if not token.startswith(("f2l1.", "f2l2.")):
            plain = token  # Stored in clear before the hook encrypted users' keys.
        else:
            try:
                plain = box.decrypt(token, user_id=row["user_id"], field=name)
            except UndecryptableKey:
                report.undecryptable.append(f"{row['id']}.{name}")
                continue
        changes[name] = box.encrypt(plain, user_id=row["user_id"], field=name)
        report.reencrypted += 1
    return changes

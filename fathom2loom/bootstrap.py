"""Bring a PocketBase server to the state the service needs; safe to run any number of times.

The duties of the design's admin service: wait for PocketBase, make sure the first superuser can
log in (creating it with the local `pocketbase` binary when there is none), make sure every
collection the migrations define exists as they define it, seed defaults (the batch API), and
say so when PocketBase runs without the project's hooks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fathom2loom.errors import (
    BootstrapError,
    ConfigError,
    PocketBaseForbidden,
    PocketBaseGarbled,
    PocketBaseNotFound,
    SchemaError,
)
from fathom2loom.pocketbase.binary import PocketBaseDir
from fathom2loom.pocketbase.bulk import ROUTE as BULK_ROUTE
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.schema import (
    REQUIRED_COLLECTIONS,
    desired_collections,
    outdated_collections,
)
from fathom2loom.queue_store import QueueStore
from fathom2loom.retry import backoff_delay
from fathom2loom.settings import Settings

__all__ = ["BootstrapError", "BootstrapReport", "bootstrap"]

log = logging.getLogger(__name__)
SUPERUSER_CREATE_TRIES = 5


@dataclass
class BootstrapReport:
    """What one bootstrap run changed; empty `actions` means it found everything in place."""

    actions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def did(self, action: str) -> None:
        log.info("bootstrap: %s", action)
        self.actions.append(action)

    def warn(self, warning: str) -> None:
        log.warning("bootstrap: %s", warning)
        self.warnings.append(warning)

    def __str__(self) -> str:
        text = "PocketBase is ready: nothing to do"
        if self.actions:
            text = "PocketBase is ready:\n" + "\n".join(f"- {a}" for a in self.actions)
        return text + "".join(f"\n! {w}" for w in self.warnings)


def _ensure_superuser(pb: PocketBase, settings: Settings, report: BootstrapReport) -> None:
    try:
        pb.authenticate(force=True)
        return
    except PocketBaseForbidden as exc:
        if settings.pb_data_dir is None:
            raise BootstrapError(
                f"cannot log in to PocketBase as {settings.pb_admin_email}: create that superuser"
                " (`pocketbase superuser create`) or set PB_DATA_DIR to PocketBase's data directory"
                " so bootstrap can create it"
            ) from exc
    _create_superuser(PocketBaseDir(settings.pb_data_dir), settings)
    pb.authenticate(force=True)
    report.did(f"created superuser {settings.pb_admin_email}")


def _create_superuser(data: PocketBaseDir, settings: Settings) -> None:
    """`pocketbase superuser create` beside the running server. It shares the server's SQLite
    file, so a failure of another kind (a write lock held too long) is tried again; a field
    PocketBase refuses (`password: ...`, `email: ...`) is said at once, in its words."""
    for attempt in range(1, SUPERUSER_CREATE_TRIES + 1):
        try:
            data.create_superuser(settings.admin_email, settings.admin_password)
            return
        except RuntimeError as exc:
            said = str(exc).replace(settings.admin_password, "***")
            if "must be unique" in said:
                raise BootstrapError(
                    f"superuser {settings.pb_admin_email} exists but PB_ADMIN_PASSWORD does not"
                    " match it"
                ) from None  # PocketBase's words are in the message below, masked, if needed.
            if attempt == SUPERUSER_CREATE_TRIES or "password:" in said or "email:" in said:
                raise BootstrapError(
                    f"could not create superuser {settings.pb_admin_email}: {said}"
                ) from None
            log.info("bootstrap: creating the superuser failed (%s); trying again", said)
            time.sleep(backoff_delay(attempt, 0.5, 4.0))


def _ensure_collections(pb: PocketBase, settings: Settings, report: BootstrapReport) -> None:
    try:
        desired = desired_collections(settings.pb_migrations_dir)
    except SchemaError as exc:
        raise BootstrapError(str(exc)) from exc
    missing = set(REQUIRED_COLLECTIONS) - {c["name"] for c in desired}
    if missing:
        raise BootstrapError(f"the migrations do not define {', '.join(sorted(missing))}")
    existing = pb.collections()
    stale = outdated_collections(existing, desired)
    if any(c["name"] == "queue" for c in stale) and any(c["name"] == "queue" for c in existing):
        cancelled = QueueStore(pb).cancel_active_duplicates()
        if cancelled:
            report.did(f"cancelled {cancelled} duplicate active queue rows")
    if stale:
        pb.import_collections(stale)
        report.did("applied migrations to " + ", ".join(c["name"] for c in stale))
    still = outdated_collections(pb.collections(), desired)
    if still:
        raise BootstrapError(
            "collections still differ from the migrations after import: "
            + ", ".join(c["name"] for c in still)
        )


def _check_hooks(pb: PocketBase, report: BootstrapReport) -> None:
    """The hooks shipped in pb_hooks/ must be loaded where PocketBase runs: without them a key a
    user saves through the API would be stored as typed."""
    try:
        answer = pb.request("GET", "/api/fathom2loom/hooks")
    except PocketBaseNotFound:
        report.warn(
            "PocketBase runs without fathom2loom's hooks: start it with --hooksDir pointing at"
            " pb_hooks/ (users' own keys would be stored unencrypted; refusals would be bare)"
        )
        return
    if not isinstance(answer, dict):
        raise PocketBaseGarbled("GET /api/fathom2loom/hooks", "the hooks' report")
    errors = answer.get("errors")
    if errors:  # The users' limits are PocketBase's settings: a bad one stops start-up too.
        raise ConfigError("in PocketBase's environment: " + "; ".join(map(str, errors)))
    if isinstance(answer.get("limits"), dict):
        limits = answer["limits"]
        log.info(
            "bootstrap: users may have %s active transfers, write log records of %s bytes, %s a"
            " minute; verified e-mail required to save keys and queue: %s",
            limits.get("USER_MAX_ACTIVE_TRANSFERS"),
            limits.get("USER_LOG_MAX_BYTES"),
            limits.get("USER_LOGS_PER_MINUTE"),
            "yes" if answer.get("require_verified") else "no",
        )
    else:
        report.warn(
            "PocketBase's hooks apply no limits on users (older than this service): deploy"
            " pb_hooks/ from this release"
        )
    if not answer.get("encryption"):
        report.warn(
            "PocketBase's hooks cannot encrypt users' keys: set PB_ENCRYPTION_KEY in"
            " PocketBase's environment (the same key the workers have)"
        )
    empty_lists: dict[str, dict[str, list[Any]]] = {
        "positions": {"positions": []},
        "logs": {"records": []},
    }
    for kind, body in empty_lists.items():
        try:  # An empty list: the route answers, checks, and writes nothing.
            pb.request("POST", f"{BULK_ROUTE}/{kind}", json=body)
        except PocketBaseNotFound:
            report.warn(
                f"PocketBase's hooks have no bulk route for {kind} ({BULK_ROUTE}/{kind}): they"
                " are older than this service; deploy pb_hooks/ from this release (until then"
                " positions and logs go through the batch API, 20-50x slower)"
            )
            return


def _seed_defaults(pb: PocketBase, settings: Settings, report: BootstrapReport) -> None:
    wanted = {
        "enabled": True,
        "maxRequests": settings.pb_batch_size,
        "timeout": settings.pb_batch_timeout_seconds,
    }
    current = pb.get_settings().get("batch", {})
    if any(current.get(key) != value for key, value in wanted.items()):
        pb.update_settings({"batch": {**current, **wanted}})
        report.did(
            f"enabled the batch API ({settings.pb_batch_size} requests,"
            f" {settings.pb_batch_timeout_seconds}s per batch)"
        )


def bootstrap(settings: Settings, pb: PocketBase | None = None) -> BootstrapReport:
    """Make PocketBase ready for the service and report what had to change."""
    report = BootstrapReport()
    client = pb or PocketBase.from_settings(settings)
    try:
        client.wait_until_healthy(settings.pb_startup_wait_seconds)
        _ensure_superuser(client, settings, report)
        _ensure_collections(client, settings, report)
        _seed_defaults(client, settings, report)
        _check_hooks(client, report)
    finally:
        if pb is None:
            client.close()
    return report

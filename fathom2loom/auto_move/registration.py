"""Each opted-in user's Fathom webhook, kept as it should be (run by beat every minute, and at
once when a user changes `user_meta` or their keys).

For a user with auto-move on and a working Fathom key, a webhook for their own recordings points
at WEBHOOK_PUBLIC_URL/fathom/<user id>; its secret is stored encrypted like the API keys. When the
key or the URL changes the old webhook is deleted and a new one registered; when the user turns
auto-move off it is deleted and the row removed. Whatever happens is written to the row's
`status`, which the user reads: "On: ...", "Waiting for a working Fathom key", or why Fathom said
no. One user's trouble never stops the others.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from fathom2loom.api_keys import KeyStore
from fathom2loom.auto_move.store import AutoMoveRow, AutoMoveStore, OptedIn
from fathom2loom.errors import (
    KeyRejected,
    PermanentProviderError,
    PocketBaseError,
    PocketBaseRequestError,
    ProviderError,
    TransientProviderError,
    UndecryptableKey,
)
from fathom2loom.pocketbase.dates import now_iso
from fathom2loom.providers.factory import Providers
from fathom2loom.providers.fathom import FathomClient
from fathom2loom.redact import secret_scope
from fathom2loom.settings import Settings

__all__ = ["ReconcileReport", "destination_url", "reconcile_webhooks", "working_key"]

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    registered: int = 0
    removed: int = 0
    waiting: int = 0


def destination_url(settings: Settings, user_id: str) -> str | None:
    base = settings.webhook_public_url
    return f"{base.rstrip('/')}/fathom/{user_id}" if base else None


def _every(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def working_key(store: AutoMoveStore, keys: KeyStore, user_id: str) -> tuple[str | None, str]:
    """(the user's Fathom key, "") when it may be used, else (None, why not, for the status)."""
    try:
        key = keys.read(user_id, "Fathom")
    except UndecryptableKey as exc:
        return None, f"Waiting for a Fathom key: the saved one cannot be decrypted ({exc.reason})"
    if not key:
        return None, "Waiting for a Fathom key: save one to start"
    saved = keys.saved(user_id)
    check = "" if saved is None else saved.check("Fathom")
    if check.startswith(("Fathom rejected", "Fathom refused", "Fathom key cannot")):
        return None, f"Waiting for a working Fathom key ({check})"
    return key, ""


def reconcile_webhooks(
    store: AutoMoveStore, keys: KeyStore, providers: Providers, settings: Settings
) -> ReconcileReport:
    report = ReconcileReport()
    opted_in, turned_off = store.survey()
    for user in opted_in:
        try:
            report.registered += _reconcile(store, keys, providers, settings, user)
        except ProviderError as exc:
            row = store.start(user)
            if isinstance(exc, TransientProviderError):
                status = (
                    f"Could not register Fathom's webhook yet ({exc.user_message}): trying again"
                )
            elif isinstance(exc, KeyRejected):
                status = f"Waiting for a working Fathom key (Fathom rejected it, {exc.status})"
            else:
                status = f"Fathom refused the webhook: {exc.user_message}"
            store.update(row, status=status)
            report.waiting += 1
            log.warning("auto-move for user %s: %s", user.user_id, status, extra=_about(user))
        except PocketBaseRequestError as exc:  # This user's records only: the others go on.
            report.waiting += 1
            log.warning(
                "auto-move for user %s: PocketBase refused a write (%s); next run",
                user.user_id,
                exc,
                extra=_about(user),
            )
    for row in turned_off:
        report.removed += _turn_off(store, keys, providers, row)
    return report


def _reconcile(
    store: AutoMoveStore, keys: KeyStore, providers: Providers, settings: Settings, user: OptedIn
) -> int:
    """1 when a webhook was registered now."""
    row = store.start(user)
    key, why_not = working_key(store, keys, user.user_id)
    if key is None:
        store.update(row, status=why_not)
        return 0
    poll = _every(settings.auto_move_poll_seconds)
    url = destination_url(settings, user.user_id)
    with secret_scope(key):
        fathom = providers.fathom(key)
        if url is None:
            row = _forget(store, fathom, row)
            store.update(
                row,
                status=f"On: new meetings are found every {poll} by the catch-up poll (no"
                " webhook: this deployment has no public URL for Fathom to call)",
            )
            return 0
        # A one-way fingerprint of the key and URL the webhook was made for: a change means redo.
        wanted, *same = store.registered_for(key, url)
        if row.webhook_id and row.registered_for in (wanted, *same):
            changes = {"registered_for": wanted}
            if not row.status.startswith("On:"):  # Was waiting for a key.
                changes["status"] = _on(poll, None)
            store.update(row, **changes)  # Writes only what changed.
            return 0
        row = _forget(store, fathom, row)
        webhook = fathom.create_webhook(url)
        try:
            store.update(
                row,
                webhook_id=webhook.id,
                encrypted_secret=store.seal(user.user_id, webhook.secret.get_secret_value()),
                destination_url=url,
                registered_for=wanted,
                status=_on(poll, now_iso()),
            )
        except PocketBaseError:
            _take_back_unless_recorded(store, fathom, row, webhook.id)
            raise
    log.info("auto-move: registered a Fathom webhook for user %s", user.user_id, extra=_about(user))
    return 1


def _on(poll: str, registered_at: str | None) -> str:
    when = f" (webhook registered {registered_at[:16]} UTC)" if registered_at else ""
    return (
        f"On: Fathom sends each new meeting as it is ready{when}; a catch-up poll every {poll}"
        " finds any it missed"
    )


def _take_back_unless_recorded(
    store: AutoMoveStore, fathom: FathomClient, row: AutoMoveRow, webhook_id: str
) -> None:
    """A webhook that could not be recorded could never be deleted later: delete it now. Unless
    the write went through after all (a timeout after PocketBase applied it): then it stays."""
    try:
        recorded = store.reread(row).webhook_id == webhook_id
    except PocketBaseError:
        return  # Cannot tell: left as it is; the next run sees what the row says.
    if not recorded:
        with contextlib.suppress(ProviderError):
            fathom.delete_webhook(webhook_id)


def _forget(store: AutoMoveStore, fathom: FathomClient, row: AutoMoveRow) -> AutoMoveRow:
    """Delete the row's webhook at Fathom, if it has one; the row without it. A webhook this key
    cannot delete (it was made with a key since replaced) is left to Fathom's settings, and said
    so in the log."""
    webhook_id = row.webhook_id
    if not webhook_id:
        return row
    try:
        if not fathom.delete_webhook(webhook_id):
            log.warning(
                "auto-move: Fathom has no webhook %s for this key (gone already, or made with an"
                " earlier key: then delete it in Fathom's settings)",
                webhook_id,
                extra={"user_id": row.user_id},
            )
    except PermanentProviderError as exc:
        log.warning(
            "auto-move: Fathom's webhook %s could not be deleted (%s): delete it in Fathom's"
            " settings if it still exists",
            webhook_id,
            exc.user_message,
            extra={"user_id": row.user_id},
        )
    return store.update(
        row, webhook_id="", encrypted_secret="", destination_url="", registered_for=""
    )


def _turn_off(store: AutoMoveStore, keys: KeyStore, providers: Providers, row: AutoMoveRow) -> int:
    """Delete the webhook of a user who turned auto-move off, then their row; 1 when done."""
    about = {"user_id": row.user_id}
    if row.webhook_id:
        key, why_not = working_key(store, keys, row.user_id)
        if key is None:
            log.warning(
                "auto-move: turned off for user %s, but Fathom's webhook %s cannot be deleted"
                " (%s): delete it in Fathom's settings",
                row.user_id,
                row.webhook_id,
                why_not,
                extra=about,
            )
        else:
            with secret_scope(key):
                try:
                    _forget(store, providers.fathom(key), row)
                except TransientProviderError:
                    return 0  # Fathom is away: the next run deletes it.
    store.remove(row)
    log.info("auto-move: turned off for user %s", row.user_id, extra=about)
    return 1


def _about(user: OptedIn) -> dict[str, str]:
    return {"user_id": user.user_id}

"""Trying each newly saved key against its provider, so a wrong key is known before a transfer.

When a user (or the operator) saves a key, PocketBase's hook marks it "checking…"; the next check
(`check_keys`, run by a worker on a wake-up from beat and every minute) decrypts each key that
changed since it was last checked, makes one cheap call with it (Fathom: the first page of
meetings; Loom: `GET /v1/me`) and writes the result on the user's `api_keys` record, where the
user reads it: `fathom_check` / `loom_check`, e.g. "Fathom key accepted" or
"Fathom rejected the key (401): check it and save it again". `checked_for` remembers which values
were checked, so nothing is tried twice; a check a passing fault prevented is tried again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from fathom2loom.api_keys import Provider, SavedKeys, record_checks, saved_keys
from fathom2loom.errors import (
    KeyRejected,
    KeyUnusable,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    UndecryptableKey,
)
from fathom2loom.keybox import Field, KeyBox
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.dates import now_iso
from fathom2loom.providers.factory import Providers
from fathom2loom.providers.key_text import PROBLEM
from fathom2loom.redact import secret_scope

__all__ = ["CHECKED", "check_keys", "fingerprint"]

log = logging.getLogger(__name__)
CHECKED: tuple[tuple[Provider, Field, str], ...] = (
    ("Fathom", "encrypted_fathom", "fathom_check"),
    ("Loom", "encrypted_loom", "loom_check"),
)


@dataclass(frozen=True)
class _Outcome:
    text: str
    final: bool  # False: a passing fault; try again at the next check


def fingerprint(keys: SavedKeys) -> str:
    """Which stored values a check was made for (a change means: check again)."""
    values = "|".join(keys.sealed(provider) for provider, _, _ in CHECKED)
    return hashlib.sha256(values.encode()).hexdigest()[:16]


def _call(providers: Providers, provider: Provider, key: str) -> Callable[[], object]:
    if provider == "Fathom":
        return providers.fathom(key).check_key
    return providers.loom(key).whoami


def _try(
    providers: Providers, box: KeyBox, keys: SavedKeys, provider: Provider, field: Field
) -> _Outcome:
    try:
        key = box.decrypt(keys.sealed(provider), user_id=keys.user_id, field=field)
    except UndecryptableKey as exc:
        return _Outcome(f"{provider} key cannot be decrypted ({exc.reason}): save it again", True)
    with secret_scope(key):
        try:
            _call(providers, provider, key)()
        except KeyRejected as exc:
            return _Outcome(
                f"{provider} rejected the key ({exc.status}): check it and save it again", True
            )
        except KeyUnusable:
            return _Outcome(f"{provider} key cannot be used: it {PROBLEM}: save it again", True)
        except PermanentProviderError as exc:
            return _Outcome(f"{provider} refused the key: {exc.user_message}", True)
        except (TransientProviderError, ProviderError) as exc:
            return _Outcome(f"not checked yet ({exc.user_message}): trying again shortly", False)
        except Exception as exc:  # A bug must not stop the checks of every user after this one.
            # Only the type: a library's message may quote the key.
            log.error(
                "checking the %s key of user %s failed unexpectedly (%s)",
                provider,
                keys.user_id,
                type(exc).__name__,
                extra={"user_id": keys.user_id},
            )
            return _Outcome(
                f"not checked yet (an unexpected {type(exc).__name__}): trying again shortly",
                False,
            )
    # (pb_hooks/limits.js refuses new rows while a check reads "… rejected the key", "… refused
    # the key", "… key cannot be used" or "… key cannot be decrypted": keep those words, or change
    # both together.)
    return _Outcome(f"{provider} key accepted (checked {now_iso()[:16]} UTC)", True)


def check_keys(pb: PocketBase, box: KeyBox, providers: Providers) -> int:
    """Check every key saved since its last check; returns how many records were checked."""
    checked = 0
    for keys in saved_keys(pb):
        stamp = fingerprint(keys)
        if keys.checked_for == stamp:
            continue
        results: dict[str, str] = {}
        final = True
        for provider, field, result_field in CHECKED:
            if not keys.sealed(provider):
                results[result_field] = ""
                continue
            outcome = _try(providers, box, keys, provider, field)
            results[result_field] = outcome.text
            final = final and outcome.final
        if final:
            results["checked_for"] = stamp
        record_checks(pb, keys, results)
        log.info("checked the keys of user %s", keys.user_id, extra={"user_id": keys.user_id})
        checked += 1
    return checked

"""The service's error tree: every error a caller of this package can meet, and nothing else.
Library errors are translated once, at each client's boundary, and chained (`raise … from exc`).

Fathom2LoomError                    `retryable`, `retry_after`, `user_message` on every error
├── ConfigError                     a setting is missing or malformed (one line, names it)
├── SchemaError                     a migration's collection snapshot cannot be read
├── BootstrapError                  PocketBase cannot be brought to a usable state
├── UndecryptableKey                a stored API key cannot be decrypted (`reason`)
├── UnknownUser                     no user with that id or e-mail
├── QueueRefused                    a move the queue does not allow (cancel an ended row, ...)
├── RowFailed                       a queue row cannot be transferred (fathom2loom.transfer)
├── UploadStopped                   an upload stopped on purpose (cancel, shutdown, lost lease)
├── FilterTooLong                   a PocketBase filter over its 3,500 characters
├── CoordinationUnavailable         Redis (leases, shared rate budgets) not answering
├── PocketBaseError                 any failure talking to PocketBase
│   ├── PocketBaseUnavailable       network fault, timeout or 5xx after the retries ran out
│   │   └── PocketBaseGarbled           a success whose body is not what PocketBase sends
│   └── PocketBaseRequestError      PocketBase answered and refused (carries status, body)
│       ├── PocketBaseNotFound          404
│       ├── PocketBaseForbidden         401/403 that survived a fresh superuser login
│       └── PocketBaseValidation        400 with per-field errors (`field_errors`)
│           ├── PocketBaseBatchFailed   a batch rolled back; `index` names the request
│           └── BulkRefused             a bulk route refused a list; `index`, `field`, `reason`
└── ProviderError                   Fathom or Loom failed (`provider`, `status`)
    ├── PermanentProviderError      the same request cannot succeed: the user must act
    │   ├── KeyRejected                 401
    │   ├── KeyUnusable                 a saved key no header can carry (we never send it)
    │   ├── NotAllowed                  403
    │   ├── RecordingNotFound           404 on a recording
    │   ├── NothingToDownload           422: no downloadable media
    │   └── ProviderRejected            any other refusal (413, a failed Loom video, ...)
    └── TransientProviderError      the same request may well succeed later
        ├── RateLimited                 429 or our own limiter; `retry_after`
        ├── TemporaryFault              5xx, network faults, cut-off streams
        ├── ProtocolError               a response we cannot read (not JSON, missing fields)
        ├── StillWorking                Fathom rendering or Loom processing; `retry_after`
        └── Gone                        state the provider no longer has; make it again
            ├── DownloadGone                Fathom's download id is unknown, expired or failed
            ├── LinkExpired                 the signed file URL expired
            ├── UploadGone                  the tus upload is unknown (404/410)
            └── VideoGone                   the Loom video is unknown or deleted

(`tests/test_errors.py` holds this drawing to the classes.)

Messages (`str()` and `user_message`) are short, say what to do, and never hold a key, a token or
a signed URL.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BootstrapError",
    "BulkRefused",
    "ConfigError",
    "CoordinationUnavailable",
    "DownloadGone",
    "Fathom2LoomError",
    "FilterTooLong",
    "Gone",
    "KeyRejected",
    "KeyUnusable",
    "LinkExpired",
    "NotAllowed",
    "NothingToDownload",
    "PermanentProviderError",
    "PocketBaseBatchFailed",
    "PocketBaseError",
    "PocketBaseForbidden",
    "PocketBaseGarbled",
    "PocketBaseNotFound",
    "PocketBaseRequestError",
    "PocketBaseUnavailable",
    "PocketBaseValidation",
    "ProtocolError",
    "ProviderError",
    "ProviderRejected",
    "QueueRefused",
    "RateLimited",
    "RecordingNotFound",
    "RowFailed",
    "SchemaError",
    "StillWorking",
    "TemporaryFault",
    "TransientProviderError",
    "UndecryptableKey",
    "UnknownUser",
    "UploadGone",
    "UploadStopped",
    "VideoGone",
]


class Fathom2LoomError(Exception):
    """Root of every error this service raises on purpose."""

    retryable: ClassVar[bool] = False
    retry_after: float | None = None

    @property
    def user_message(self) -> str:
        return str(self)


class ConfigError(Fathom2LoomError):
    """A setting is missing or malformed; the message is one line fit to show the operator."""


class UndecryptableKey(Fathom2LoomError):
    """A stored API key cannot be decrypted; `reason` says why, without any key material."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownUser(Fathom2LoomError):
    """No user has that id or e-mail address."""


class SchemaError(Fathom2LoomError):
    """A migration file's snapshot cannot be read."""


class BootstrapError(Fathom2LoomError):
    """PocketBase cannot be brought to a usable state; the message says what to do."""


class QueueRefused(Fathom2LoomError):
    """The move is not allowed for this row (the message says why)."""


class RowFailed(Fathom2LoomError):
    """The row cannot be transferred; `message` is what the user reads."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UploadStopped(Fathom2LoomError):
    """The caller asked the upload to stop (the row was cancelled, the lease was lost, the
    worker is shutting down): not a fault."""


class FilterTooLong(Fathom2LoomError, ValueError):
    """A PocketBase filter longer than the 3,500 characters PocketBase takes."""


class CoordinationUnavailable(Fathom2LoomError):
    """Redis, where processes share leases and rate budgets, is not answering; try later."""

    retryable = True


# -- PocketBase ---------------------------------------------------------------------------------


class PocketBaseError(Fathom2LoomError):
    """PocketBase could not do what was asked."""


class PocketBaseUnavailable(PocketBaseError):
    """PocketBase could not be reached or kept failing (5xx); worth retrying later.

    `unreachable` is True when no answer came at all (the server is down or restarting): an
    outage of the whole server, never something one request or row brings about.
    """

    retryable = True

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class PocketBaseGarbled(PocketBaseUnavailable):
    """PocketBase (or a proxy in front of it) answered a success we cannot read: not JSON, or
    JSON of the wrong shape. Transient: a proxy's page or a restart in progress passes."""

    def __init__(self, call: str, expected: str) -> None:
        super().__init__(f"PocketBase answered {call} with something that is not {expected}")


class PocketBaseRequestError(PocketBaseError):
    """PocketBase answered with an error status; retrying the same request will not help."""

    def __init__(self, status: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"PocketBase refused the request ({status}): {message}")
        self.status = status
        self.message = message
        self.data = data or {}


class PocketBaseNotFound(PocketBaseRequestError):
    """The record or collection does not exist (or the rules hide it)."""


class PocketBaseForbidden(PocketBaseRequestError):
    """The credentials were refused even after logging in again."""


class PocketBaseValidation(PocketBaseRequestError):
    """The request was malformed; `field_errors` maps field name to PocketBase's message."""

    @property
    def field_errors(self) -> dict[str, str]:
        return {
            name: str(detail.get("message", detail)) if isinstance(detail, dict) else str(detail)
            for name, detail in self.data.items()
        }

    def __str__(self) -> str:
        fields = ", ".join(f"{k}: {v}" for k, v in sorted(self.field_errors.items()))
        return f"{super().__str__()}" + (f" [{fields}]" if fields else "")


class PocketBaseBatchFailed(PocketBaseValidation):
    """A batch was rolled back as a whole; `index` is the request that failed (in the batch)."""

    def __init__(
        self, status: int, message: str, data: dict[str, Any], index: int | None, cause: str
    ) -> None:
        super().__init__(status, message, data)
        self.index = index
        self.cause = cause

    def __str__(self) -> str:
        return f"PocketBase rolled back a batch: request {self.index} failed: {self.cause}"


class BulkRefused(PocketBaseValidation):
    """A bulk route refused a list; `index` is the value's place in the list given, `field` its
    field; nothing of that request was written."""

    def __init__(self, index: int, field: str, reason: str) -> None:
        super().__init__(400, f"record {index} was refused ({field}: {reason})")
        self.index, self.field, self.reason = index, field, reason

    def __str__(self) -> str:
        return self.message


# -- providers ----------------------------------------------------------------------------------


class ProviderError(Fathom2LoomError):
    """Fathom or Loom failed. `str()` and `user_message` never hold a key or a signed URL."""

    def __init__(
        self,
        provider: str,
        user_message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(user_message)
        self.provider = provider
        self.status = status
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Retrying the same request cannot succeed; the user has to act."""


class KeyRejected(PermanentProviderError):
    """The provider refused the API key (401)."""


class KeyUnusable(PermanentProviderError):
    """The saved key holds what no API key has (a line break, other scripts): never sent."""


class NotAllowed(PermanentProviderError):
    """The key may not use the item (403)."""


class RecordingNotFound(PermanentProviderError):
    """Fathom has no such recording for this key."""


class NothingToDownload(PermanentProviderError):
    """Fathom has no downloadable media for the recording (422)."""


class ProviderRejected(PermanentProviderError):
    """Any other refusal the user or the operator has to act on."""


class TransientProviderError(ProviderError):
    """The same request may well succeed later."""

    retryable = True


class RateLimited(TransientProviderError):
    """Over a rate budget (a 429, or our own shared limiter)."""


class TemporaryFault(TransientProviderError):
    """5xx, a network fault or a stream that broke off."""


class ProtocolError(TransientProviderError):
    """The provider answered with something we cannot read: not JSON, a missing or bad field.

    Retried (a proxy's error page or a deploy in progress pass), but a bounded number of times.
    """


class StillWorking(TransientProviderError):
    """The provider is still preparing something (a render, a video); come back later."""


class Gone(TransientProviderError):
    """The provider no longer has state we kept (an id, an upload): make it again."""


class DownloadGone(Gone):
    """Fathom's download is unknown (another key made it, it is too old), expired or failed."""


class LinkExpired(Gone):
    """The signed file URL expired: ask Fathom for a new download."""


class UploadGone(Gone):
    """The tus server no longer knows the upload (404/410): create a new one."""


class VideoGone(Gone):
    """The Loom video is unknown or was deleted: make a new one."""

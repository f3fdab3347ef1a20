"""The service's error tree. Library errors are translated once, at each client's boundary.

Fathom2LoomError
└── PocketBaseError                 any failure talking to PocketBase
    ├── PocketBaseUnavailable       network fault, timeout or 5xx after the retries ran out
    └── PocketBaseRequestError      PocketBase answered and refused (carries status, body)
        ├── PocketBaseNotFound          404
        ├── PocketBaseForbidden         401/403 that survived a fresh superuser login
        └── PocketBaseValidation        400 with per-field errors (`field_errors`)
            └── PocketBaseBatchFailed   a batch rolled back; `index` names the request
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DownloadFailed",
    "Fathom2LoomError",
    "KeyRejected",
    "LinkExpired",
    "NotAllowed",
    "NothingToDownload",
    "PermanentProviderError",
    "PocketBaseBatchFailed",
    "PocketBaseError",
    "PocketBaseForbidden",
    "PocketBaseNotFound",
    "PocketBaseRequestError",
    "PocketBaseUnavailable",
    "PocketBaseValidation",
    "ProviderError",
    "ProviderRejected",
    "RateLimited",
    "RecordingNotFound",
    "StillRendering",
    "TemporaryFault",
    "TransientProviderError",
]


class Fathom2LoomError(Exception):
    """Root of every error this service raises on purpose."""


class PocketBaseError(Fathom2LoomError):
    """PocketBase could not do what was asked."""


class PocketBaseUnavailable(PocketBaseError):
    """PocketBase could not be reached or kept failing (5xx); worth retrying later."""


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
        self.user_message = user_message
        self.status = status
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Retrying the same request cannot succeed; the user has to act."""


class KeyRejected(PermanentProviderError):
    pass


class NotAllowed(PermanentProviderError):
    pass


class RecordingNotFound(PermanentProviderError):
    pass


class NothingToDownload(PermanentProviderError):
    pass


class DownloadFailed(PermanentProviderError):
    pass


class ProviderRejected(PermanentProviderError):
    pass


class TransientProviderError(ProviderError):
    """The same request may well succeed later."""


class RateLimited(TransientProviderError):
    pass


class TemporaryFault(TransientProviderError):
    pass


class StillRendering(TransientProviderError):
    pass


class LinkExpired(TransientProviderError):
    pass

"""Fathom's shapes, as its OpenAPI spec publishes them (the fields we use typed, the rest kept as
they came), and its documented per-account rate budgets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from fathom2loom.providers.ratelimit import Budget

__all__ = [
    "DEFAULT_BASE_URL",
    "PROVIDER",
    "DownloadFile",
    "FathomLimits",
    "Meeting",
    "MeetingsPage",
    "RecordingDownload",
    "Webhook",
]

PROVIDER = "Fathom"
DEFAULT_BASE_URL = "https://api.fathom.ai/external/v1"


class DownloadFile(BaseModel):
    """The `video` or `audio` object of a completed download."""

    url: str = Field(pattern=r"^https?://")
    content_type: str
    file_size_bytes: int = Field(gt=0)
    expires_at: datetime

    def __repr__(self) -> str:  # The URL is a bearer credential: keep it out of reprs and logs.
        return f"DownloadFile(size={self.file_size_bytes}, type={self.content_type!r})"

    __str__ = __repr__


class RecordingDownload(BaseModel):
    download_id: str = Field(min_length=1, max_length=128)
    recording_id: int
    status: Literal["processing", "completed", "failed", "expired"]
    video: DownloadFile | None = None
    audio: DownloadFile | None = None
    failure_reason: str | None = None

    @property
    def file(self) -> DownloadFile | None:
        return self.video or self.audio


class Meeting(BaseModel):
    """A Meeting with the fields we use typed; the rest of Fathom's fields kept as they came."""

    model_config = ConfigDict(extra="allow")

    title: str
    meeting_title: str | None
    recording_id: int = Field(ge=0, lt=10**18)  # stored as text: fathom2loom.meeting_ids
    url: str
    share_url: str
    created_at: datetime
    recording_start_time: datetime
    recording_end_time: datetime
    recorded_by: dict[str, Any] | None = None  # {name, email, ...}: whose recording it is
    action_items: list[Any] | None = None  # present with include_action_items=true

    @field_validator("created_at", "recording_start_time", "recording_end_time")
    @classmethod
    def _utc_when_unzoned(cls, value: datetime) -> datetime:
        """The spec's date-times carry an offset; one without is read as UTC, never compared
        naive against aware times (a TypeError deep in a poll)."""
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @property
    def duration_seconds(self) -> float:
        return (self.recording_end_time - self.recording_start_time).total_seconds()

    @property
    def recorder_email(self) -> str | None:
        email = (self.recorded_by or {}).get("email")
        return email.strip() if isinstance(email, str) and email.strip() else None


class MeetingsPage(BaseModel):
    """`GET /meetings`: all three keys are always present; `next_cursor` is null on the last."""

    limit: int | None
    next_cursor: str | None
    items: list[Meeting]


class Webhook(BaseModel):
    """`POST /webhooks`' answer. The spec has more fields, all kept; only these two are needed,
    and a webhook Fathom made is never left behind unknown because another one was missing."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=128)
    secret: SecretStr  # whsec_…: signs every delivery; never logged, never shown


@dataclass(frozen=True)
class FathomLimits:
    """Fathom's documented per-account budgets (all calls; transcript/summary; downloads)."""

    calls: int = 60
    heavy_calls: int = 30
    download_requests: int = 30
    window_seconds: float = 60.0

    def budgets(self, kind: Literal["plain", "heavy", "download"]) -> list[Budget]:
        chosen = [Budget("all", self.calls, self.window_seconds)]
        if kind == "heavy":
            chosen.append(Budget("heavy", self.heavy_calls, self.window_seconds))
        elif kind == "download":
            chosen.append(Budget("download", self.download_requests, self.window_seconds))
        return chosen

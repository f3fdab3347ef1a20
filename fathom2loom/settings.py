"""Typed settings, read once from the environment (and an optional `.env`).

Every setting has one environment variable of the same name, upper-cased. A missing or malformed
value raises `ConfigError` whose message names the variable and says what is expected, in one line,
and never repeats the value: several of these settings are secrets.

Secrets are required only by the processes that use them: `load_settings(needs=...)` names them,
and each process states its needs at start (`Settings.require`). Workers need the PocketBase
superuser and `PB_ENCRYPTION_KEY`; beat needs the superuser; Flower needs neither.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fathom2loom.errors import ConfigError

__all__ = [
    "NEEDS_ALL",
    "NEEDS_POCKETBASE",
    "SECRET_VARIABLES",
    "ConfigError",
    "Settings",
    "decode_encryption_key",
    "get_settings",
    "load_settings",
    "without_secrets",
]

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
# A checkout has pb_migrations/ beside the package; an installed wheel carries them inside it.
DEFAULT_MIGRATIONS_DIR = next(
    (d for d in (PROJECT_ROOT / "pb_migrations", PACKAGE_DIR / "pb_migrations") if d.is_dir()),
    PROJECT_ROOT / "pb_migrations",
)
# PocketBase's JavaScript hooks (users' keys encrypted as they are saved, refusals that say why):
# they ship beside the migrations and must be loaded wherever PocketBase runs.
DEFAULT_HOOKS_DIR = next(
    (d for d in (PROJECT_ROOT / "pb_hooks", PACKAGE_DIR / "pb_hooks") if d.is_dir()),
    PROJECT_ROOT / "pb_hooks",
)
# The users' web app (pb_public/), served by PocketBase itself: one origin with its API.
DEFAULT_PUBLIC_DIR = next(
    (d for d in (PROJECT_ROOT / "pb_public", PACKAGE_DIR / "pb_public") if d.is_dir()),
    PROJECT_ROOT / "pb_public",
)
ENCRYPTION_KEY_BYTES = 32
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# What each variable expects, said in the error when it is missing or malformed.
EXPECTED: dict[str, str] = {
    "PB_URL": "the PocketBase base URL, e.g. http://127.0.0.1:8090",
    "PB_ADMIN_EMAIL": "the first superuser's e-mail address, e.g. admin@example.com",
    "PB_ADMIN_PASSWORD": "the first superuser's password, at least 10 characters",
    "PB_ENCRYPTION_KEY": "32 random bytes as 64 hex characters or base64 "
    "(make one with: python -c 'import secrets; print(secrets.token_hex(32))')",
    "PB_ENCRYPTION_KEY_PREVIOUS": "comma-separated earlier keys, each 32 bytes as hex or base64",
    "REDIS_URL": "a Redis URL, e.g. redis://127.0.0.1:6379/0",
}


# What each kind of process needs besides the defaults.
NEEDS_POCKETBASE = ("PB_ADMIN_EMAIL", "PB_ADMIN_PASSWORD")
NEEDS_ALL = (*NEEDS_POCKETBASE, "PB_ENCRYPTION_KEY")
# Variables that hold secrets: a process gets those its role needs, never the rest.
SECRET_VARIABLES = frozenset(
    {
        "PB_ADMIN_PASSWORD",
        "PB_ENCRYPTION_KEY",
        "PB_ENCRYPTION_KEY_PREVIOUS",
        "FLOWER_BASIC_AUTH",
        "REDIS_PASSWORD",
    }
)


def without_secrets(environ: dict[str, str]) -> dict[str, str]:
    """An environment to pass on, with every secret variable taken out."""
    return {name: value for name, value in environ.items() if name not in SECRET_VARIABLES}


def decode_encryption_key(raw: str) -> bytes:
    """Decode `PB_ENCRYPTION_KEY`: 32 bytes as 64 hex characters or (URL-safe) base64."""
    text = raw.strip()
    key: bytes | None = None
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        key = bytes.fromhex(text)
    else:
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=False)
        except (binascii.Error, ValueError):
            key = None
        if key is not None and not re.fullmatch(r"[A-Za-z0-9+/_-]+=*", text):
            key = None
    if key is None or len(key) != ENCRYPTION_KEY_BYTES:
        got = "not hex or base64" if key is None else f"decodes to {len(key)} bytes"
        raise ValueError(f"must be 32 bytes as 64 hex characters or base64 ({got})")
    return key


class Settings(BaseSettings):
    """The service's configuration; see `.env.example` for every variable."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    pb_url: str = "http://127.0.0.1:8090"
    pb_admin_email: str | None = None
    pb_admin_password: SecretStr | None = None
    pb_encryption_key: SecretStr | None = None
    # Earlier encryption keys, comma-separated: still accepted for reading during a rotation.
    pb_encryption_key_previous: SecretStr | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Where a local PocketBase keeps its data; lets bootstrap create the first superuser with the
    # `pocketbase` binary, which the REST API cannot do before a superuser exists.
    pb_data_dir: Path | None = None
    pb_migrations_dir: Path = DEFAULT_MIGRATIONS_DIR
    pb_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 15.0
    pb_retry_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    # Requests per PocketBase batch call; bootstrap sets the server's limit to this value.
    pb_batch_size: Annotated[int, Field(ge=1, le=1000)] = 200
    pb_batch_timeout_seconds: Annotated[int, Field(ge=1, le=120)] = 10
    pb_startup_wait_seconds: Annotated[float, Field(ge=0, le=600)] = 60.0

    # Providers. Fathom's limits are documented; keep them settings in case they change.
    fathom_base_url: str = "https://api.fathom.ai/external/v1"
    fathom_calls_per_window: Annotated[int, Field(ge=1)] = 60
    fathom_heavy_calls_per_window: Annotated[int, Field(ge=1)] = 30
    fathom_download_requests_per_window: Annotated[int, Field(ge=1)] = 30
    fathom_rate_window_seconds: Annotated[float, Field(gt=0)] = 60.0
    fathom_poll_initial_seconds: Annotated[float, Field(gt=0)] = 5.0
    fathom_poll_max_seconds: Annotated[float, Field(gt=0)] = 120.0
    # Loom publishes no upload API: this is our adapter contract's server (docs/loom-contract.md).
    loom_base_url: str | None = None
    loom_auth_header: str = "Authorization"
    loom_auth_scheme: str = "Bearer "
    loom_chunk_bytes: Annotated[int, Field(ge=64 * 1024, le=256 * 1024 * 1024)] = 8 * 1024 * 1024
    loom_poll_initial_seconds: Annotated[float, Field(gt=0)] = 1.0
    loom_poll_max_seconds: Annotated[float, Field(gt=0)] = 60.0
    # Retries inside one provider call; a longer wait ends the task and is recorded on the row.
    provider_retry_attempts: Annotated[int, Field(ge=1, le=20)] = 4
    provider_retry_base_seconds: Annotated[float, Field(gt=0, le=60)] = 0.5
    provider_max_sleep_seconds: Annotated[float, Field(ge=0, le=300)] = 3.0
    http_connect_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    http_read_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0

    # Transfers and Celery. The visibility timeout must exceed the longest transfer: a message
    # unacked for longer is handed to another worker (our lease makes that copy wait).
    celery_visibility_timeout_seconds: Annotated[int, Field(ge=1)] = 4 * 3600
    celery_restore_interval_seconds: Annotated[int, Field(ge=1)] = 10
    transfer_time_limit_seconds: Annotated[int, Field(ge=5)] = 3 * 3600
    # Liveness: a running transfer renews its lease and in-flight marker every third of this; a
    # worker that dies (or loses Redis) lets both run out, and the row is sent again.
    transfer_lease_seconds: Annotated[float, Field(ge=1, le=3600)] = 30.0
    transfer_progress_interval_seconds: Annotated[float, Field(gt=0)] = 3.0
    # Waits up to this long are slept in the worker; longer ones end the task (see README).
    transfer_inline_wait_seconds: Annotated[float, Field(ge=0, le=60)] = 3.0
    transfer_max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    transfer_retry_base_seconds: Annotated[float, Field(gt=0)] = 10.0
    transfer_retry_max_seconds: Annotated[float, Field(gt=0)] = 600.0
    transfer_render_timeout_seconds: Annotated[float, Field(gt=0)] = 6 * 3600.0
    # Fresh Fathom downloads (after a stale id, an expiry or a failed render) and new Loom videos
    # (after one was deleted or failed) one row may make before it fails.
    transfer_max_download_requests: Annotated[int, Field(ge=1, le=100)] = 5
    transfer_max_video_generations: Annotated[int, Field(ge=1, le=100)] = 5

    # The dispatcher (beat task + realtime wake-up).
    sync_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    dispatch_max_in_flight: Annotated[int, Field(ge=1, le=10000)] = 16
    dispatch_per_user: Annotated[int, Field(ge=1, le=1000)] = 2
    # A sent task that has not started (and so not taken over its marker) by then is sent again.
    dispatch_claim_seconds: Annotated[float, Field(ge=1)] = 600.0
    realtime_wakeup: bool = True

    # The log sink: records wait in Redis (at most this many) until the flush task moves them.
    log_buffer_max_records: Annotated[int, Field(ge=100)] = 200_000
    log_flush_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0

    # Meetings that move by themselves (users opt in on `user_meta.auto_move`). Fathom delivers
    # its webhook to WEBHOOK_PUBLIC_URL/fathom/<user id>: the receiver's address as Fathom reaches
    # it (behind a reverse proxy with TLS). Without it only the catch-up poll finds new meetings.
    webhook_public_url: str | None = None
    webhook_listen_host: str = "127.0.0.1"
    webhook_listen_port: Annotated[int, Field(ge=1, le=65535)] = 8095
    # Refused deliveries one source may send in a minute before it is answered 429 unheard; how
    # often the refusals are summed up in the log; the proxies whose X-Forwarded-For names the
    # source (comma-separated addresses, or *).
    webhook_refusals_per_minute: Annotated[int, Field(ge=1, le=100_000)] = 30
    webhook_refusal_report_seconds: Annotated[float, Field(ge=1, le=86400)] = 60.0
    webhook_trusted_proxies: str = "127.0.0.1"
    # How often each opted-in user's new meetings are listed (webhooks missed meanwhile are found),
    # and how many of each rate window's Fathom calls the listing leaves to transfers.
    auto_move_poll_seconds: Annotated[float, Field(gt=0, le=86400)] = 300.0
    auto_move_reconcile_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    auto_move_reserved_calls: Annotated[int, Field(ge=0)] = 20
    # Fathom lists a meeting once it is processed, maybe after a later one: each poll looks this
    # far back before its watermark (what it finds again is already queued).
    auto_move_lookback_seconds: Annotated[float, Field(ge=0, le=30 * 86400)] = 86400.0

    @field_validator("pb_url", "fathom_base_url", "loom_base_url", "webhook_public_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or (value == "" and info.field_name == "webhook_public_url"):
            return None  # An empty WEBHOOK_PUBLIC_URL turns webhooks off.
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not re.fullmatch(r"(redis|rediss|unix)://\S+", value):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("pb_admin_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _EMAIL.fullmatch(value.strip()):
            raise ValueError("must be an e-mail address")
        return value.strip()

    @field_validator("pb_admin_password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 10:
            raise ValueError("must be at least 10 characters")
        return value

    @field_validator("pb_encryption_key")
    @classmethod
    def _encryption_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_encryption_key(value.get_secret_value())
        return value

    @field_validator("pb_encryption_key_previous")
    @classmethod
    def _previous_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for part in value.get_secret_value().split(","):
                if part.strip():
                    decode_encryption_key(part)
        return value

    def require(self, *variables: str) -> Settings:
        """Raise `ConfigError` naming every one of `variables` that is not set."""
        missing = [name for name in variables if getattr(self, name.lower()) is None]
        if missing:
            raise ConfigError(
                "; ".join(f"{name} is not set: expected {EXPECTED[name]}" for name in missing)
            )
        return self

    def secret(self, variable: str) -> str:
        """A required value as plain text (for a client, or a child process's environment)."""
        value = getattr(self.require(variable), variable.lower())
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)

    @property
    def admin_email(self) -> str:
        return self.secret("PB_ADMIN_EMAIL")

    @property
    def admin_password(self) -> str:
        return self.secret("PB_ADMIN_PASSWORD")

    @property
    def encryption_key(self) -> bytes:
        return decode_encryption_key(self.secret("PB_ENCRYPTION_KEY"))

    @property
    def previous_encryption_keys(self) -> list[bytes]:
        raw = self.pb_encryption_key_previous
        parts = raw.get_secret_value().split(",") if raw else []
        return [decode_encryption_key(p) for p in parts if p.strip()]


def _describe(error: Any) -> str:
    variable = str(error["loc"][0]).upper() if error["loc"] else "settings"
    expected = EXPECTED.get(variable)
    if error["type"] == "missing":
        return f"{variable} is not set: expected {expected or 'a value'}"
    reason = str(error["msg"]).removeprefix("Value error, ")
    hint = f" (expected {expected})" if expected and expected not in reason else ""
    return f"{variable} is invalid: {reason}{hint}"


def load_settings(*, needs: tuple[str, ...] = NEEDS_ALL, **overrides: Any) -> Settings:
    """Build settings from the environment; validation errors become one `ConfigError` line.

    `needs` are the secrets this process cannot run without (variable names).
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        # Not chained: pydantic's error quotes the values, and several of them are secrets.
        raise ConfigError("; ".join(_describe(e) for e in exc.errors())) from None
    return settings.require(*needs)


@cache
def get_settings() -> Settings:
    """The process-wide settings, loaded on first use; each role states its own needs."""
    return load_settings(needs=())

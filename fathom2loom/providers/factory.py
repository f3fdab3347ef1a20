"""Provider clients built from settings: one set of HTTP connections per process, keys per user.

A worker process makes one `Providers` (in its `WorkerContext`) and closes it at shutdown; never
share one across a fork. Users' keys go into the per-user client objects, never into the shared
HTTP clients.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import httpx
import redis

from fathom2loom.errors import ProviderRejected
from fathom2loom.keybox import fingerprint_secret
from fathom2loom.providers.fathom import FathomClient, FathomLimits
from fathom2loom.providers.http import RetryPolicy
from fathom2loom.providers.loom import LoomClient
from fathom2loom.providers.ratelimit import RateLimiter, key_identity
from fathom2loom.settings import Settings

__all__ = ["Providers"]


@dataclass
class Providers:
    settings: Settings
    api_http: httpx.Client
    storage_http: httpx.Client
    limiter: RateLimiter
    policy: RetryPolicy
    _identity_secret: bytes | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, redis_client: redis.Redis, *, policy: RetryPolicy | None = None
    ) -> Providers:
        timeout = httpx.Timeout(
            settings.http_read_timeout_seconds, connect=settings.http_connect_timeout_seconds
        )
        limits = httpx.Limits(max_connections=20, max_keepalive_connections=10)
        return cls(
            settings=settings,
            api_http=httpx.Client(timeout=timeout, limits=limits),
            # The signed-URL client: no default headers, so no key can ever ride along.
            storage_http=httpx.Client(timeout=timeout, limits=limits, follow_redirects=True),
            limiter=RateLimiter(redis_client),
            policy=policy
            or RetryPolicy(
                attempts=settings.provider_retry_attempts,
                backoff_base=settings.provider_retry_base_seconds,
                max_sleep=settings.provider_max_sleep_seconds,
            ),
        )

    def identity(self, api_key: str) -> str:
        """The key's name in the shared rate budgets: an HMAC under a secret derived from
        PB_ENCRYPTION_KEY (every process that holds users' keys has it)."""
        if self._identity_secret is None:
            self._identity_secret = fingerprint_secret(self.settings.encryption_key)
        return key_identity(api_key, self._identity_secret)

    def fathom(self, api_key: str, *, background: bool = False) -> FathomClient:
        """The user's Fathom client. `background` work (the auto-move poll) shares the user's
        rate budget with transfers but stops short of its last AUTO_MOVE_RESERVED_CALLS calls,
        and never waits for budget: transfers come first."""
        s = self.settings
        reserved = s.auto_move_reserved_calls if background else 0
        return FathomClient(
            api_key,
            http=self.api_http,
            storage_http=self.storage_http,
            base_url=s.fathom_base_url,
            limiter=self.limiter,
            limits=FathomLimits(
                calls=max(1, s.fathom_calls_per_window - reserved),
                heavy_calls=max(1, s.fathom_heavy_calls_per_window - reserved),
                download_requests=s.fathom_download_requests_per_window,
                window_seconds=s.fathom_rate_window_seconds,
            ),
            policy=replace(self.policy, max_sleep=0.0) if background else self.policy,
            poll_initial=s.fathom_poll_initial_seconds,
            poll_max=s.fathom_poll_max_seconds,
            identity=self.identity(api_key),
        )

    def loom(self, api_key: str) -> LoomClient:
        s = self.settings
        if not s.loom_base_url:
            raise ProviderRejected(
                "Loom", "LOOM_BASE_URL is not set: the operator must configure the Loom adapter"
            )
        return LoomClient(
            api_key,
            http=self.api_http,
            base_url=s.loom_base_url,
            auth_header=s.loom_auth_header,
            auth_scheme=s.loom_auth_scheme,
            policy=self.policy,
            chunk_bytes=s.loom_chunk_bytes,
            identity=self.identity(api_key),
        )

    def close(self) -> None:
        self.api_http.close()
        self.storage_http.close()

"""The shared rate limiter keeps every process using one key under Fathom's limits."""

from __future__ import annotations

import threading
from typing import Any

import redis

from fathom2loom.errors import RateLimited
from fathom2loom.providers.fathom import FathomClient, FathomLimits
from fathom2loom.providers.http import RetryPolicy
from fathom2loom.providers.ratelimit import Budget, RateLimiter, key_identity
from tests.conftest import FATHOM_KEY

WINDOW = 1.0
LIMIT = 8


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_two_clients_sharing_a_key_stay_under_the_limit(
    redis_server: Any, fathom_standin: Any, providers: Any
) -> None:
    # Given two clients, each with its own Redis connection and HTTP client, as two workers
    fathom_standin.add_meeting(FATHOM_KEY, 1)
    limits = FathomLimits(calls=LIMIT, window_seconds=WINDOW)
    clients = [
        FathomClient(
            FATHOM_KEY,
            http=providers.api_http,
            storage_http=providers.storage_http,
            base_url=fathom_standin.url,
            limiter=RateLimiter(redis.Redis.from_url(redis_server.url)),
            limits=limits,
            policy=RetryPolicy(max_sleep=5.0),
        )
        for _ in range(2)
    ]
    errors: list[BaseException] = []

    def hammer(client: FathomClient) -> None:
        try:
            for _ in range(12):
                list(client.meetings())
        except BaseException as exc:
            errors.append(exc)

    # When both make 12 calls as fast as they can
    threads = [threading.Thread(target=hammer, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Expect every call made, and never more than LIMIT in any window at the server
    assert errors == []
    times = fathom_standin.call_times(FATHOM_KEY)
    assert len(times) == 24
    # (The server sees a call when it arrives, the limiter when it sets off: on a loaded machine
    # the two can be a few hundred ms apart, so a window a little shorter than the budget's.)
    assert max_in_any_window(times, WINDOW * 0.7) <= LIMIT
    assert max(times) - min(times) >= 2 * WINDOW  # 24 calls at 8 per window need 3 windows


def test_budgets_are_taken_together_or_not_at_all(redis_client: Any) -> None:
    limiter = RateLimiter(redis_client)
    who = key_identity("k")
    small = [Budget("all", 5, 10), Budget("heavy", 2, 10)]
    assert limiter.try_take(who, small) == 0
    assert limiter.try_take(who, small) == 0
    assert limiter.try_take(who, small) > 0  # heavy is spent
    for _ in range(3):
        assert limiter.try_take(who, small[:1]) == 0  # the third heavy call took nothing
    assert limiter.try_take(who, small[:1]) > 0


def test_cooldown_after_a_429_applies_to_everyone(redis_client: Any) -> None:
    limiter = RateLimiter(redis_client)
    who = key_identity("k2")
    limiter.cool_down(who, 5)
    other = RateLimiter(redis_client)
    assert 4 < other.try_take(who, [Budget("all", 100, 60)]) <= 5
    try:
        other.take(who, [Budget("all", 100, 60)], max_wait=0.1, provider="Fathom")
    except RateLimited as exc:
        assert exc.retry_after is not None and exc.retry_after > 4
    else:
        raise AssertionError("expected RateLimited")


def test_keys_are_never_stored(redis_client: Any) -> None:
    limiter = RateLimiter(redis_client)
    limiter.try_take(key_identity(FATHOM_KEY), [Budget("all", 10, 60)])
    assert all(FATHOM_KEY.encode() not in key for key in redis_client.keys("*"))

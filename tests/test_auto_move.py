"""New Fathom meetings that move by themselves: the user's opt-in, the webhook Fathom calls, the
receiver that checks it, and the catch-up poll, with real processes (PocketBase, Redis, the
receiver, Celery beat and workers) and the Fathom stand-in delivering signed events."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from standardwebhooks import Webhook as Signer

from devkit.local_servers import LocalRedis, free_port
from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin
from devkit.standins.webhooks import Registration
from fathom2loom.api_keys import KeyStore, store_keys
from fathom2loom.auto_move.catch_up import catch_up
from fathom2loom.auto_move.receiver import Receiver as Deliveries
from fathom2loom.auto_move.refusals import RefusalGuard
from fathom2loom.auto_move.registration import reconcile_webhooks
from fathom2loom.auto_move.store import AutoMoveStore
from fathom2loom.logsink.buffer import LogBuffer
from fathom2loom.logsink.flush import flush_logs
from fathom2loom.pocketbase.client import PocketBase, Record
from fathom2loom.pocketbase.dates import parse_date, pb_date
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.providers.factory import Providers
from fathom2loom.providers.ratelimit import Budget, RateLimiter
from fathom2loom.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, UserSession, make_settings
from tests.http_proxy import Proxy
from tests.pipeline import (
    BOX,
    FATHOM_KEY,
    Receiver,
    Scenario,
    Stack,
    assert_one_video_each,
    kill_redis,
    wait_all,
)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def turn_on(user: UserSession, **fields: Any) -> None:
    """The user turns auto-move on through PocketBase's API, as a web app would."""
    body = {"user_id": user.id, "auto_move": True, **fields}
    answer = user.call("POST", user.records("user_meta"), json=body)
    assert answer.status_code == 200, answer.text


def rows_of(pb: PocketBase, user_id: str, meeting: int) -> list[Record]:
    where = pb_filter("user_id = {:u} && meeting_id = {:m}", u=user_id, m=str(meeting))
    return list(pb.list_all("queue", filter=where))


def own_fathom_key(
    scenario: Scenario, fathom: FathomStandin, name: str, owner: str | None = None
) -> str:
    """A Fathom key of the scenario's user alone (their meetings only), stored for them; Fathom
    knows its owner by `owner`, else by the user's sign-in e-mail."""
    key = f"fathom-{name}-{secrets.token_hex(4)}"
    fathom.add_key(key, owner_email=owner or scenario.user.email)
    store_keys(scenario.pb, BOX, scenario.user.id, fathom=key, loom=None)
    return key


def own_auto_move_row(user: UserSession) -> dict[str, Any] | None:
    answer = user.call("GET", user.records("auto_move"))
    answer.raise_for_status()
    items = answer.json()["items"]
    return items[0] if items else None


def delivery_statuses(fathom: FathomStandin, recording: int) -> list[int | None]:
    """What the receiver answered to each delivery attempt for `recording` (None: no answer)."""
    return [a.status for a in fathom.webhooks.attempts if a.recording_id == recording]


@pytest.fixture
def receiver(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Receiver]:
    started = Receiver(worker_env, tmp_path / "receiver.log").start()
    yield started
    started.stop()


@pytest.fixture
def service_settings(worker_env: dict[str, str], receiver: Receiver) -> Settings:
    """The service's settings as the workers have them, with the receiver's public URL."""
    return make_settings(
        worker_env["PB_URL"],
        worker_env["REDIS_URL"],
        fathom_base_url=worker_env["FATHOM_BASE_URL"],
        loom_base_url=worker_env["LOOM_BASE_URL"],
        webhook_public_url=receiver.url,
        provider_retry_base_seconds=0.05,
    )


@pytest.fixture
def providers(service_settings: Settings) -> Iterator[Providers]:
    made = Providers.from_settings(
        service_settings, redis.Redis.from_url(service_settings.redis_url)
    )
    yield made
    made.close()


def signed(
    secret: str, body: str, *, message_id: str | None = None, age: float = 0
) -> dict[str, str]:
    moment = datetime.now(UTC) - timedelta(seconds=age)
    message_id = message_id or f"msg_{secrets.token_hex(8)}"
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Signer(secret).sign(message_id, moment, body),
    }


def registered(
    scenario: Scenario, fathom: FathomStandin, providers: Providers, settings: Settings
) -> Registration:
    """The scenario's user with auto-move on, and the webhook the service registered for them."""
    turn_on(scenario.user)
    store, keys = AutoMoveStore(scenario.pb, BOX), KeyStore(scenario.pb, BOX)
    reconcile_webhooks(store, keys, providers, settings)
    (registration,) = fathom.webhooks.registrations(FATHOM_KEY)
    return registration


def test_the_receiver_refuses_what_it_cannot_trust_and_says_so(
    scenario: Scenario,
    fathom: FathomStandin,
    receiver: Receiver,
    service_settings: Settings,
    providers: Providers,
    worker_env: dict[str, str],
) -> None:
    pb, user = scenario.pb, scenario.user
    # Given a user with auto-move on, whose webhook the service registered at Fathom
    registration = registered(scenario, fathom, providers, service_settings)
    assert registration.url == f"{receiver.url}/fathom/{user.id}"
    assert not registration.includes["include_transcript"]
    assert not registration.includes["include_summary"]
    # The user reads the status of their own auto-move, never its secret
    mine = own_auto_move_row(user)
    assert mine is not None and mine["status"].startswith("On: Fathom sends each new meeting")
    assert "encrypted_secret" not in mine and "registered_for" not in mine
    assert user.call("PATCH", user.records("auto_move", mine["id"]), json={}).status_code == 403
    meeting = fathom.add_meeting(FATHOM_KEY, 9801, created_at=datetime.now(UTC))
    body = json.dumps(meeting)
    url = f"{receiver.url}/fathom/{user.id}"

    def deliver(headers: dict[str, str], content: str = body, to: str = url) -> int:
        return httpx.post(to, content=content, headers=headers, timeout=10).status_code

    # When deliveries come that cannot be trusted, expect each refused
    forged = signed("whsec_" + "QUJD" * 8, body)
    assert deliver(forged) == 401
    stale = signed(registration.secret, body, age=600)
    assert deliver(stale) == 400
    nobody = f"{receiver.url}/fathom/{secrets.token_hex(8)[:15]}"
    assert deliver(signed(registration.secret, body), to=nobody) == 404
    assert deliver(signed(registration.secret, body), to=f"{receiver.url}/fathom/NOT-AN-ID") == 404
    not_a_meeting = '{"recording_id": "nine"}'
    assert deliver(signed(registration.secret, not_a_meeting), content=not_a_meeting) == 400
    assert rows_of(pb, user.id, 9801) == []
    # And a good one queues the meeting once; the same message again is a replay
    good = signed(registration.secret, body)
    assert deliver(good) == 201
    assert deliver(good) == 409
    again = signed(registration.secret, body)  # The same meeting in a new message
    assert deliver(again) == 200
    assert len(rows_of(pb, user.id, 9801)) == 1
    # Every refusal is in `logs`, with what it claimed and why
    buffer = LogBuffer(redis.Redis.from_url(worker_env["REDIS_URL"]))

    def refusals() -> list[Record]:
        flush_logs(pb, buffer, batch_size=1000)
        where = 'component = "webhooks" && level = "warn"'
        return list(pb.list_all("logs", filter=where))

    # (the first of each kind: the two unknown users are one sample)
    logged = wait_for("the refusals in logs", lambda: len(refusals()) >= 5 and refusals())
    reasons = " | ".join(r["msg"] for r in logged)
    for status in ("(401)", "(400): stale", "(404)", "(400): the body", "(409)"):
        assert status in reasons, reasons
    assert len(logged) == 5, reasons
    assert all(r["metadata"].get("webhook_id") for r in logged)


def test_a_delivery_while_pocketbase_is_away_is_left_for_the_senders_retry(
    scenario: Scenario,
    fathom: FathomStandin,
    receiver: Receiver,
    service_settings: Settings,
    providers: Providers,
    worker_env: dict[str, str],
) -> None:
    pb, user = scenario.pb, scenario.user
    registration = registered(scenario, fathom, providers, service_settings)
    meeting = fathom.add_meeting(FATHOM_KEY, 9811, created_at=datetime.now(UTC))
    body = json.dumps(meeting)
    headers = signed(registration.secret, body)
    # Given a receiver whose PocketBase is away (nothing listens there), on the same Redis
    away = PocketBase(
        f"http://127.0.0.1:{free_port()}", ADMIN_EMAIL, ADMIN_PASSWORD, retry_attempts=2
    )
    client = redis.Redis.from_url(worker_env["REDIS_URL"])
    try:
        # When a delivery comes, expect "retry later", and the webhook-id not kept as seen
        status, answer = Deliveries(AutoMoveStore(away, BOX), client, RefusalGuard(30)).handle(
            user.id, headers, body.encode()
        )
        assert (status, answer["message"]) == (503, "temporarily unavailable: retry later")
    finally:
        away.close()
        client.close()
    # So the sender's retry, once PocketBase answers, queues the meeting rather than a 409
    url = f"{receiver.url}/fathom/{user.id}"
    assert httpx.post(url, content=body, headers=headers, timeout=10).status_code == 201
    assert len(rows_of(pb, user.id, 9811)) == 1


def test_new_meetings_move_by_themselves_through_the_webhook(
    scenario: Scenario,
    stack: Stack,
    stack_env: dict[str, str],
    receiver: Receiver,
    fathom: FathomStandin,
    loom: LoomStandin,
) -> None:
    pb, user = scenario.pb, scenario.user
    stack.env = {
        **stack_env,
        "WEBHOOK_PUBLIC_URL": receiver.url,
        "AUTO_MOVE_RECONCILE_SECONDS": "3600",  # Realtime alone: on change, on connect
        "AUTO_MOVE_POLL_SECONDS": "3600",  # Only the webhook can bring them in time
    }
    stack.beat()
    stack.worker(concurrency=2)
    # When the user turns auto-move on, the service registers the webhook
    turn_on(user)
    wait_for("the webhook", lambda: fathom.webhooks.registrations(FATHOM_KEY))
    # And two new meetings finish at Fathom, the second delivered three times
    fathom.finish_meeting(FATHOM_KEY, 9701, size=300_000)
    fathom.finish_meeting(FATHOM_KEY, 9702, size=300_000, deliveries=3)
    # Expect both queued and moved within seconds, each once, with one Loom video each
    rows = wait_for(
        "both rows",
        lambda: (a := rows_of(pb, user.id, 9701)) and (b := rows_of(pb, user.id, 9702)) and a + b,
        timeout=15,
    )
    wait_all(scenario, [r["id"] for r in rows], timeout=30)
    answered = wait_for(  # Every delivery answered: a duplicate would have landed by then
        "every delivery answered",
        lambda: (
            (seen := delivery_statuses(fathom, 9702))
            and len(seen) >= 3
            and None not in seen
            and seen
        ),
    )
    assert sorted(answered)[:1] == [201] and set(sorted(answered)[1:]) == {409}
    assert len(rows_of(pb, user.id, 9701)) == len(rows_of(pb, user.id, 9702)) == 1
    assert_one_video_each(loom, pb, [r["id"] for r in rows])
    # The deliveries (the user's own recordings) told who the user is at Fathom
    mine = own_auto_move_row(user)
    assert mine is not None and mine["recorded_by"] == fathom.owner_email(FATHOM_KEY)
    # One of the three copies was taken; the others were refused as replays (and a sender that
    # retries on any non-2xx tries them again, to the same answer)
    statuses = delivery_statuses(fathom, 9702)
    assert statuses.count(201) == 1 and set(statuses) == {201, 409}, statuses
    # When the user turns auto-move off, the webhook is deleted at Fathom
    meta = pb.first("user_meta", filter=pb_filter("user_id = {:u}", u=user.id))
    assert meta is not None
    answer = user.call("PATCH", user.records("user_meta", meta["id"]), json={"auto_move": False})
    assert answer.status_code == 200, answer.text
    wait_for("the webhook gone", lambda: not fathom.webhooks.registrations(FATHOM_KEY))
    wait_for("the auto-move row gone", lambda: own_auto_move_row(user) is None)


def test_meetings_missed_while_the_receiver_was_down_are_caught_up(
    scenario: Scenario,
    stack: Stack,
    stack_env: dict[str, str],
    receiver: Receiver,
    fathom: FathomStandin,
    loom: LoomStandin,
) -> None:
    pb, user = scenario.pb, scenario.user
    poll = 4.0
    stack.env = {
        **stack_env,
        "WEBHOOK_PUBLIC_URL": receiver.url,
        "AUTO_MOVE_RECONCILE_SECONDS": "3600",  # Realtime alone: on change, on connect
        "AUTO_MOVE_POLL_SECONDS": str(poll),
    }
    fathom.webhooks.retry_delays = (0.2,)  # Fathom gives up quickly on a receiver that is down
    # (the user tells their Fathom e-mail: no delivery will have said it)
    turn_on(user, fathom_email=fathom.owner_email(FATHOM_KEY))
    stack.beat()
    stack.worker(concurrency=2)
    wait_for("the webhook", lambda: fathom.webhooks.registrations(FATHOM_KEY))
    # Given the receiver down while three meetings finish, and every delivery failed
    receiver.stop()
    meetings = [9601, 9602, 9603]
    for meeting in meetings:
        fathom.finish_meeting(FATHOM_KEY, meeting, size=200_000)
    wait_for(
        "every delivery to fail",
        lambda: len([a for a in fathom.webhooks.attempts if a.recording_id in meetings]) == 6,
    )
    assert all(a.status is None for a in fathom.webhooks.attempts)
    # When the receiver is back, expect all three queued within one poll interval (plus the
    # time a poll takes), each once, and moved
    receiver.start()
    back = time.monotonic()
    rows = wait_for(
        "the three rows",
        lambda: (
            (found := [r for m in meetings for r in rows_of(pb, user.id, m)])
            and len({r["meeting_id"] for r in found}) == 3
            and found
        ),
        timeout=poll + 10,
    )
    assert time.monotonic() - back <= poll + 10
    wait_all(scenario, [r["id"] for r in rows], timeout=60)
    assert all(len(rows_of(pb, user.id, m)) == 1 for m in meetings)
    assert_one_video_each(loom, pb, [r["id"] for r in rows])


def test_the_catch_up_poll_keeps_its_watermark_and_leaves_transfers_their_budget(
    scenario: Scenario,
    fathom: FathomStandin,
    service_settings: Settings,
    providers: Providers,
) -> None:
    pb, user = scenario.pb, scenario.user
    store, keys = AutoMoveStore(pb, BOX), KeyStore(pb, BOX)
    own_key = own_fathom_key(scenario, fathom, "catch-up")  # This user's meetings only
    since = datetime.now(UTC) - timedelta(days=2)
    turn_on(user, auto_move_since=pb_date(since))
    at = {n: since + timedelta(hours=h) for n, h in ((9501, -1), (9502, 1), (9503, 3))}
    for meeting, created in at.items():
        fathom.add_meeting(own_key, meeting, created_at=created)
    teammates = since + timedelta(hours=2)  # Shared with the user, not theirs: never moved
    fathom.add_meeting(own_key, 9509, created_at=teammates, recorded_by="mate@acme.example")
    # The first poll queues what the user recorded since `auto_move_since`, not before
    first = catch_up(store, keys, providers, service_settings)
    assert len(first.queued) == 2
    assert rows_of(pb, user.id, 9501) == [] and rows_of(pb, user.id, 9509) == []
    row = store.row(user.id)
    assert row is not None and row.watermark == pb_date(at[9503])
    # A meeting Fathom lists only now, made before the watermark, is still found; nothing twice
    fathom.add_meeting(own_key, 9504, created_at=since + timedelta(hours=2))
    second = catch_up(store, keys, providers, service_settings)
    assert len(second.queued) == 1 and len(rows_of(pb, user.id, 9504)) == 1
    assert catch_up(store, keys, providers, service_settings).queued == []
    # A meeting the user cancelled is not queued again
    pb.update("queue", rows_of(pb, user.id, 9502)[0]["id"], {"status": "cancelled"})
    assert catch_up(store, keys, providers, service_settings).queued == []
    # When transfers have used the key's budget down to the reserve, the poll waits its turn
    client = redis.Redis.from_url(service_settings.redis_url)
    for stale in client.scan_iter("f2l:ratelimit:*"):  # Earlier tests' calls with this key
        client.delete(stale)
    limiter = RateLimiter(client)
    calls = service_settings.fathom_calls_per_window
    background = calls - service_settings.auto_move_reserved_calls
    budget = [Budget("all", calls, service_settings.fathom_rate_window_seconds)]
    for _ in range(background):
        assert limiter.try_take(providers.identity(own_key), budget) == 0
    fathom.add_meeting(own_key, 9505, created_at=datetime.now(UTC))
    deferred = catch_up(store, keys, providers, service_settings)
    assert (deferred.queued, deferred.deferred) == ([], 1)
    # While a transfer may still call
    assert limiter.try_take(providers.identity(own_key), budget) == 0


def test_auto_move_counts_from_when_the_user_turned_it_on_not_when_the_service_saw_it(
    scenario: Scenario,
    fathom: FathomStandin,
    service_settings: Settings,
    providers: Providers,
) -> None:
    pb, user = scenario.pb, scenario.user
    store, keys = AutoMoveStore(pb, BOX), KeyStore(pb, BOX)
    own_key = own_fathom_key(scenario, fathom, "counts-from")
    fathom.add_meeting(own_key, 9401, created_at=datetime.now(UTC) - timedelta(minutes=5))
    # Given a user who turns auto-move on (no date), and a meeting that ends just after
    turn_on(user)
    meta = pb.first("user_meta", filter=pb_filter("user_id = {:u}", u=user.id))
    turned_on = parse_date(meta["updated"]) if meta else None
    assert turned_on is not None
    ended = turned_on + timedelta(milliseconds=50)
    fathom.add_meeting(own_key, 9402, created_at=ended)
    # When the service first sees it later (beat busy or down meanwhile: its row is made after
    # the meeting ended)
    wait_for("the meeting to have ended", lambda: datetime.now(UTC) > ended)
    first = catch_up(store, keys, providers, service_settings)
    # Expect the meeting that ended after the user's change queued, the older one not
    assert len(first.queued) == 1 and len(rows_of(pb, user.id, 9402)) == 1
    assert rows_of(pb, user.id, 9401) == []
    # And the user reads from when it counts on their own row
    mine = own_auto_move_row(user)
    meta = pb.first("user_meta", filter=pb_filter("user_id = {:u}", u=user.id))
    assert mine is not None and meta is not None
    assert mine["counts_from"] == meta["updated"]


def test_a_backlog_longer_than_the_budget_is_worked_through_over_polls(
    scenario: Scenario,
    fathom: FathomStandin,
    service_settings: Settings,
    providers: Providers,
) -> None:
    pb, user = scenario.pb, scenario.user
    own_key = own_fathom_key(scenario, fathom, "backlog")
    # Given a user who asks for five weeks back, one meeting a week
    since = datetime.now(UTC) - timedelta(days=35)
    meetings = {9601 + n: since + timedelta(days=7 * n + 1) for n in range(5)}
    for meeting, created in meetings.items():
        fathom.add_meeting(own_key, meeting, created_at=created)
    turn_on(user, auto_move_since=pb_date(since))
    store, keys = AutoMoveStore(pb, BOX), KeyStore(pb, BOX)
    # And a Fathom budget that leaves the poll three calls a window
    tight = service_settings.model_copy(
        update={"fathom_calls_per_window": 23, "auto_move_reserved_calls": 20}
    )
    client = redis.Redis.from_url(tight.redis_url)
    budget = Providers.from_settings(tight, client)
    try:
        # When the poll runs out of budget part way, expect the weeks it went through queued and
        # the watermark saved past them
        first = catch_up(store, keys, budget, tight)
        assert (len(first.queued), first.deferred) == (3, 1)
        row = store.row(user.id)
        watermark = parse_date(row.watermark) if row else None
        assert watermark is not None and watermark > meetings[9603]
        # And the next poll (a new window) goes on from there, queueing the rest, none twice
        for used in client.scan_iter("f2l:ratelimit:*"):
            client.delete(used)
        second = catch_up(store, keys, budget, tight)
        assert (len(second.queued), second.deferred) == (2, 0)
        assert all(len(rows_of(pb, user.id, m)) == 1 for m in meetings)
    finally:
        budget.close()
        client.close()


def test_a_garbled_listing_leaves_the_watermark_for_the_next_poll(
    scenario: Scenario,
    fathom: FathomStandin,
    service_settings: Settings,
    providers: Providers,
) -> None:
    pb, user = scenario.pb, scenario.user
    own_key = own_fathom_key(scenario, fathom, "garbled")
    since = datetime.now(UTC) - timedelta(hours=3)
    turn_on(user, auto_move_since=pb_date(since))
    fathom.add_meeting(own_key, 9701, created_at=since + timedelta(hours=1))
    store, keys = AutoMoveStore(pb, BOX), KeyStore(pb, BOX)
    # Given Fathom's listing answered by a proxy's page (every try)
    fathom.set_fault(f"key:{own_key}", endpoint="GET /meetings", garble="html")
    try:
        # Expect the poll to defer this user, queue nothing and keep the watermark
        first = catch_up(store, keys, providers, service_settings)
        assert (first.queued, first.deferred) == ([], 1)
        row = store.row(user.id)
        assert row is not None and row.watermark == pb_date(since)
    finally:
        fathom.clear_faults()
    # And the next poll, Fathom sane again, to queue the meeting
    second = catch_up(store, keys, providers, service_settings)
    assert len(second.queued) == 1 and len(rows_of(pb, user.id, 9701)) == 1


def test_a_change_of_whose_meetings_or_of_the_date_looks_again(
    scenario: Scenario,
    fathom: FathomStandin,
    service_settings: Settings,
    providers: Providers,
) -> None:
    pb, user = scenario.pb, scenario.user
    other = "Alice.Other@acme.example"  # not their sign-in e-mail
    own_key = own_fathom_key(scenario, fathom, "look-again", owner=other)
    since = datetime.now(UTC) - timedelta(days=10)
    fathom.add_meeting(own_key, 9901, created_at=since + timedelta(days=1))
    fathom.add_meeting(own_key, 9902, created_at=since - timedelta(days=1))
    turn_on(user, auto_move_since=pb_date(since))
    store, keys = AutoMoveStore(pb, BOX), KeyStore(pb, BOX)
    # Given a first poll that counted the sign-in e-mail's recordings: none, and went past them
    assert catch_up(store, keys, providers, service_settings).queued == []
    row = store.row(user.id)
    assert row is not None and row.recorded_by == user.email
    watermark = parse_date(row.watermark)
    assert watermark is not None and watermark > since + timedelta(days=6)  # past a whole week
    meta = pb.first("user_meta", filter=pb_filter("user_id = {:u}", u=user.id))
    assert meta is not None
    # When the user says which Fathom account is theirs, expect the poll to look again
    answer = user.call(
        "PATCH",
        user.records("user_meta", meta["id"]),
        json={"fathom_email": other},
    )
    assert answer.status_code == 200, answer.text
    assert len(catch_up(store, keys, providers, service_settings).queued) == 1
    assert len(rows_of(pb, user.id, 9901)) == 1
    # And when they move `auto_move_since` back, the older meeting too
    earlier = pb_date(since - timedelta(days=2))
    answer = user.call(
        "PATCH", user.records("user_meta", meta["id"]), json={"auto_move_since": earlier}
    )
    assert answer.status_code == 200, answer.text
    assert len(catch_up(store, keys, providers, service_settings).queued) == 1
    assert len(rows_of(pb, user.id, 9902)) == 1
    mine = own_auto_move_row(user)
    assert mine is not None and mine["recorded_by"] == other


def test_the_receiver_rides_out_redis_going_away_and_coming_back_empty(
    scenario: Scenario,
    fathom: FathomStandin,
    own_redis: LocalRedis,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    pb, user = scenario.pb, scenario.user
    # Given the receiver on a Redis of its own, and the user's webhook registered
    env = {**worker_env, "REDIS_URL": own_redis.url}
    receiver = Receiver(env, tmp_path / "receiver.log").start()
    settings = make_settings(
        worker_env["PB_URL"],
        own_redis.url,
        fathom_base_url=worker_env["FATHOM_BASE_URL"],
        loom_base_url=worker_env["LOOM_BASE_URL"],
        webhook_public_url=receiver.url,
    )
    client = redis.Redis.from_url(own_redis.url)
    providers = Providers.from_settings(settings, client)
    retry_delays = fathom.webhooks.retry_delays
    try:
        turn_on(user)
        reconcile_webhooks(AutoMoveStore(pb, BOX), KeyStore(pb, BOX), providers, settings)
        assert fathom.webhooks.registrations(FATHOM_KEY)
        fathom.webhooks.retry_delays = (1.0,) * 15  # A sender that keeps trying for a while
        # When Redis dies and a meeting finishes meanwhile
        kill_redis(own_redis)
        fathom.finish_meeting(FATHOM_KEY, 9901, size=100_000)
        # Expect the delivery refused as "try again later", and the receiver still up
        wait_for("a 503", lambda: 503 in delivery_statuses(fathom, 9901))
        assert receiver.process is not None and receiver.process.poll() is None
        assert rows_of(pb, user.id, 9901) == []
        # When Redis comes back empty, expect the sender's next try to queue the meeting, once
        own_redis.start()
        wait_for("the row", lambda: rows_of(pb, user.id, 9901), timeout=20)
        wait_for("the 201", lambda: 201 in delivery_statuses(fathom, 9901))
        # And a meeting that finishes afterwards goes through at the first try
        fathom.finish_meeting(FATHOM_KEY, 9902, size=100_000)
        wait_for("the next row", lambda: rows_of(pb, user.id, 9902), timeout=10)
        assert delivery_statuses(fathom, 9902) == [201]
        assert len(rows_of(pb, user.id, 9901)) == len(rows_of(pb, user.id, 9902)) == 1
        assert receiver.process.poll() is None
    finally:
        fathom.webhooks.retry_delays = retry_delays
        providers.close()
        client.close()
        receiver.stop()


def test_a_flood_of_unsigned_deliveries_costs_a_few_lines_and_stops_being_heard(
    scenario: Scenario,
    fathom: FathomStandin,
    service_settings: Settings,
    providers: Providers,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    pb, user = scenario.pb, scenario.user
    # Given a receiver whose every PocketBase lookup is counted (a proxy in front), refusing at
    # most 20 deliveries a minute from one source, summing refusals up every 2 s
    proxy = Proxy(worker_env["PB_URL"]).start()
    env = {
        **worker_env,
        "PB_URL": proxy.url,
        "WEBHOOK_REFUSALS_PER_MINUTE": "20",
        "WEBHOOK_REFUSAL_REPORT_SECONDS": "2",
    }
    receiver = Receiver(env, tmp_path / "receiver.log").start()
    settings = service_settings.model_copy(update={"webhook_public_url": receiver.url})
    try:
        registration = registered(scenario, fathom, providers, settings)
        meeting = fathom.add_meeting(FATHOM_KEY, 9811, created_at=datetime.now(UTC))
        body = json.dumps(meeting)
        lookups_before = proxy.forwarded
        # When a stranger sends 500 unsigned deliveries, to the user and to made-up users
        targets = [user.id if n % 2 else secrets.token_hex(8)[:15] for n in range(500)]

        def stranger(target: str) -> httpx.Response:
            return httpx.post(f"{receiver.url}/fathom/{target}", content=body, timeout=10)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(stranger, targets))
        # Expect at most 20 heard for the user and 40 in all, the rest answered 429 unheard,
        # with when to come back
        statuses = Counter(a.status_code for a in answers)
        heard = statuses[401] + statuses[404]
        assert 20 <= heard <= 40 and statuses[401] <= 20, statuses
        assert statuses[429] == 500 - heard, statuses
        assert all(int(a.headers["Retry-After"]) > 0 for a in answers if a.status_code == 429)
        # And at most two PocketBase requests (a login, a lookup) for each delivery heard
        assert proxy.forwarded - lookups_before <= 2 * heard + 2
        # And in `logs` one sample of each kind and one summary, not 500 records
        buffer = LogBuffer(redis.Redis.from_url(worker_env["REDIS_URL"]))

        def webhook_logs() -> list[Record]:
            flush_logs(pb, buffer, batch_size=1000)
            return list(pb.list_all("logs", filter='component = "webhooks"', sort="ts"))

        def counted() -> int:  # What the summaries add up to
            summaries = [r["msg"] for r in webhook_logs() if "refusals in" in r["msg"]]
            return sum(int(n) for msg in summaries for n in re.findall(r" x(\d+)", msg))

        wait_for("every refusal summed up", lambda: counted() == 500)
        logged = webhook_logs()
        summaries = sum("refusals in" in r["msg"] for r in logged)
        # A sample of each kind (three here) and a sum in each 2 s window: a handful, not 500
        assert len(logged) <= 4 * summaries + 4 and len(logged) < 100, [r["msg"] for r in logged]
        assert any("429 rate limited x" in r["msg"] for r in logged)
        assert len(receiver.log_path.read_text().splitlines()) < 30
        # While a signed delivery from elsewhere (here another loopback address: Fathom) is taken
        fathom_side = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        delivered = fathom_side.post(
            registration.url, content=body, headers=signed(registration.secret, body)
        )
        assert delivered.status_code == 201, delivered.text
        assert len(rows_of(pb, user.id, 9811)) == 1
        # And when somebody's own webhooks make Fathom's address send refusals for made-up
        # users, past its budget in all, expect Fathom still heard for the user it delivers to
        made_up = [
            fathom_side.post(f"{receiver.url}/fathom/{secrets.token_hex(8)[:15]}", content=body)
            for _ in range(60)
        ]
        assert made_up[-1].status_code == 429
        later = json.dumps(fathom.add_meeting(FATHOM_KEY, 9812, created_at=datetime.now(UTC)))
        again = fathom_side.post(
            registration.url, content=later, headers=signed(registration.secret, later)
        )
        fathom_side.close()
        assert again.status_code == 201, again.text
    finally:
        receiver.stop()
        proxy.stop()


def test_a_webhook_is_named_by_a_keyed_fingerprint_and_older_names_still_count(
    scenario: Scenario,
    fathom: FathomStandin,
    service_settings: Settings,
    providers: Providers,
) -> None:
    pb, user = scenario.pb, scenario.user
    store, keys = AutoMoveStore(pb, BOX), KeyStore(pb, BOX)
    # Given a user's webhook registered by the service
    registration = registered(scenario, fathom, providers, service_settings)
    row = store.row(user.id)
    assert row is not None
    # Expect the key and URL it was made for stored as an HMAC under the server's secret, not a
    # plain hash that anyone holding a guessed key could check
    plain = hashlib.sha256(f"fathom2loom webhook\0{FATHOM_KEY}\0{registration.url}".encode())
    legacy = plain.hexdigest()[:32]
    keyed = store.registered_for(FATHOM_KEY, registration.url)[0]
    assert row.registered_for == keyed != legacy
    # When a row still holds the plain hash of an earlier release
    pb.update("auto_move", row.id, {"registered_for": legacy})
    reconcile_webhooks(store, keys, providers, service_settings)
    # Expect the same webhook kept (not made again), its name rewritten
    assert [r.id for r in fathom.webhooks.registrations(FATHOM_KEY)] == [registration.id]
    after = store.row(user.id)
    assert after is not None and after.registered_for == keyed

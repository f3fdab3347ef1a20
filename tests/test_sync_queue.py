"""The dispatcher against real PocketBase and Redis, and with real beat and worker processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from devkit.standins.loom import LoomStandin
from fathom2loom.dispatcher import sync_once
from fathom2loom.inflight import InFlight
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.settings import Settings
from tests.conftest import make_settings
from tests.pipeline import MIB, Scenario, Stack, assert_one_video_each, wait_all


def dispatcher_settings(settings: Settings, **overrides: Any) -> Settings:
    return make_settings(settings.pb_url, settings.redis_url, **overrides)


def pending_positions(pb: PocketBase) -> dict[str, int]:
    rows = pb.list_all("queue", filter='status = "pending"', fields="id,position")
    return {r["id"]: r["position"] for r in rows}


def test_positions_are_the_dispatch_order_and_one_meeting_goes_early(
    scenario: Scenario,
    make_user: Callable[[str], Any],
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    # Given user a with 50 queued rows, then user b with one row queued after them
    backlog = [scenario.row(8000 + n) for n in range(50)]
    b = Scenario(scenario.pb, make_user("single"), scenario.celery, scenario.fathom)
    single = b.row(8100)
    config = dispatcher_settings(settings, dispatch_max_in_flight=2, dispatch_per_user=1)
    inflight = InFlight(redis_client)
    dispatched: list[str] = []
    previous: dict[str, int] = {}
    while len(dispatched) < 51:
        sent: list[str] = []
        report = sync_once(scenario.pb, redis_client, config, send=sent.append)
        assert report is not None and report.sent == sent
        # The rows sent are exactly the head of the line the previous sync published
        if previous:
            assert sent == sorted(previous, key=previous.__getitem__)[: len(sent)]
        # And they now hold positions 1..n in the order they were sent
        positions = pending_positions(scenario.pb)
        assert [positions[r] for r in sent] == list(range(1, len(sent) + 1))
        assert sorted(positions.values()) == list(range(1, len(positions) + 1))
        dispatched += sent
        # The workers finish them before the next sync
        for row_id in sent:
            scenario.pb.update("queue", row_id, {"status": "completed", "position": 0})
            inflight.release(row_id)
        previous = {k: v for k, v in pending_positions(scenario.pb).items()}
    assert dispatched.index(single) < 3
    assert set(dispatched) == {*backlog, single}


def test_a_retried_row_loses_its_old_end_at_the_next_sync(
    scenario: Scenario, redis_client: redis.Redis, settings: Settings
) -> None:
    # Given a failed row the user sets back to pending (the rules let them change only status)
    row = scenario.row(8150)
    scenario.pb.update(
        "queue",
        row,
        {"status": "failed", "completed_at": "2026-11-25 10:00:00.000Z", "error_message": "x"},
    )
    retried = scenario.user.call(
        "PATCH", scenario.user.records("queue", row), json={"status": "pending"}
    )
    assert retried.status_code == 200, retried.text
    # When the dispatcher syncs (no slot free, so the row stays pending)
    config = dispatcher_settings(settings, dispatch_max_in_flight=1)
    scenario.pb.create(
        "queue",
        {
            "id": "someotherrow123",
            "user_id": scenario.user.id,
            "meeting_id": "8151",
            "status": "processing",
        },
    )
    InFlight(redis_client).claim("someotherrow123", 60)
    sync_once(scenario.pb, redis_client, config, send=lambda row_id: None)
    # Expect the old end gone while it waits, and a place in line
    stored = scenario.pb.get("queue", row)
    assert stored["status"] == "pending" and stored["position"] == 1
    assert stored["completed_at"] == "" and stored["error_message"] == ""


def test_overlapping_syncs_never_send_a_row_twice(
    scenario: Scenario, redis_client: redis.Redis, settings: Settings
) -> None:
    rows = {scenario.row(8200 + n) for n in range(30)}
    config = dispatcher_settings(settings, dispatch_max_in_flight=100, dispatch_per_user=100)
    sent: list[str] = []
    lock = threading.Lock()

    def record(row_id: str) -> None:
        with lock:
            sent.append(row_id)

    def hammer() -> None:
        for _ in range(15):
            sync_once(scenario.pb, redis_client, config, send=record)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(sent) == sorted(rows)


# -- with real beat and worker processes ---------------------------------------------------


def test_two_beats_and_racing_syncs_transfer_every_row_exactly_once(
    scenario: Scenario,
    make_user: Callable[[str], Any],
    stack: Stack,
    loom: LoomStandin,
    stack_env: dict[str, str],
    settings: Settings,
) -> None:
    other = Scenario(scenario.pb, make_user("second"), scenario.celery, scenario.fathom)
    rows = [scenario.row(8300 + n) for n in range(8)] + [other.row(8400 + n) for n in range(4)]
    stack.beat()
    stack.beat()
    stack.worker(concurrency=2)
    # Extra syncs racing the beats, as a third dispatcher would
    racing = redis.Redis.from_url(stack_env["REDIS_URL"])
    config = make_settings(
        settings.pb_url, stack_env["REDIS_URL"], dispatch_max_in_flight=4, dispatch_per_user=2
    )

    def send(row_id: str) -> None:
        scenario.celery.send_task("fathom2loom.transfer", args=[row_id], queue="transfers")

    stop = threading.Event()

    def race() -> None:
        while not stop.is_set():
            sync_once(scenario.pb, racing, config, send=send)
            time.sleep(0.05)

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_all(scenario, rows)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        racing.close()
    assert_one_video_each(loom, scenario.pb, rows)


def test_a_row_whose_worker_died_is_rescued(
    scenario: Scenario, stack: Stack, loom: LoomStandin
) -> None:
    # Given a transfer under way in a worker that is then killed (its message stays unacked
    # for the broker's long visibility timeout: only the dispatcher can rescue the row)
    loom.set_fault("*", slow_patch_seconds=0.15)
    row = scenario.row(8500, size=3 * MIB)
    stack.beat()
    doomed = stack.worker(concurrency=1)
    scenario.wait(row, lambda r: (r["bytes_done"] or 0) > 0)
    doomed.kill()
    loom.clear_faults()
    # When a new worker comes up, the row is sent again once the lease and marker run out
    stack.worker(concurrency=1)
    wait_all(scenario, [row])
    assert_one_video_each(loom, scenario.pb, [row])
    assert loom.video_sha256(scenario.pb.get("queue", row)["loom_video_id"]) == (
        scenario.fathom.expected_sha256(8500)
    )


def test_rows_survive_redis_being_flushed(
    scenario: Scenario, stack: Stack, loom: LoomStandin, stack_env: dict[str, str]
) -> None:
    # Given rows already dispatched into Redis with no worker to run them
    rows = [scenario.row(8600 + n) for n in range(6)]
    stack.beat()
    scenario.wait(rows[0], lambda r: r["position"] == 1)
    client = redis.Redis.from_url(stack_env["REDIS_URL"])
    deadline = time.monotonic() + 20
    while client.llen("transfers") == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.llen("transfers") > 0
    # When Redis loses everything
    client.flushdb()
    client.close()
    # Expect every row to complete once workers run
    stack.worker(concurrency=2)
    wait_all(scenario, rows)
    assert_one_video_each(loom, scenario.pb, rows)


def test_a_new_row_is_picked_up_through_realtime(
    scenario: Scenario, stack: Stack, stack_env: dict[str, str]
) -> None:
    # Given a beat whose tick is a minute away, and a worker
    stack.env = {**stack_env, "SYNC_INTERVAL_SECONDS": "60"}
    beat = stack.beat()
    stack.worker(concurrency=1)
    deadline = time.monotonic() + 20  # Until the beat's listener is connected
    while b"realtime: listening to" not in beat.log_path.read_bytes():
        assert time.monotonic() < deadline, beat.log_tail()
        time.sleep(0.1)
    # When a row is created, it is sent by the realtime wake-up, long before the next tick
    row = scenario.row(8700)
    wait_all(scenario, [row], timeout=30)
    # And the transfer's own log lines reach `logs` through the sink, tied to the user and row
    deadline = time.monotonic() + 20
    while True:
        logs = list(scenario.pb.list_all("logs", filter='component = "transfer"'))
        mine = [r for r in logs if r["metadata"].get("row_id") == row]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert mine and all(r["user_id"] == scenario.user.id for r in mine)
    assert any("completed" in r["msg"] for r in mine)

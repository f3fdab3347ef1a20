"""Drills with real processes: Redis restarted empty, or PocketBase restarted, mid-run.

The stack here has Redis of its own (so restarting it touches no other test): a beat and two
workers, transfers under way, then Redis is killed and comes back with nothing in it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import redis

from devkit.local_servers import LocalRedis
from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin
from fathom2loom.api_keys import store_keys
from fathom2loom.logsink.handler import RedisLogHandler
from fathom2loom.pocketbase.client import PocketBase, Record
from fathom2loom.pocketbase.dates import now_iso
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, start_pocketbase
from tests.pipeline import (
    BOX,
    FATHOM_KEY,
    FINAL,
    LOOM_KEY,
    MIB,
    Flower,
    Scenario,
    restart_empty,
    video_key,
)
from tests.workers import CeleryBeat, CeleryProcess, CeleryWorker


def completed_with_one_video_each(
    pb: PocketBase, loom: LoomStandin, rows: list[str], user_id: str, meetings: range
) -> list[Record]:
    """Wait (up to 2 minutes) for the rows to end; each must be completed, one video each."""
    deadline = time.monotonic() + 120
    while True:
        states = [pb.get("queue", r) for r in rows]
        if all(s["status"] in FINAL for s in states) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [s["status"] for s in states] == ["completed"] * len(rows), [
        (s["status"], s["error_message"]) for s in states
    ]
    created = loom.stats()["videos_created_by_key"]
    assert [created[video_key(user_id, m)] for m in meetings] == [1] * len(meetings)
    return states


def test_redis_restarted_empty_mid_run(
    scenario: Scenario,
    worker_env: dict[str, str],
    own_redis: LocalRedis,
    tmp_path: Path,
    fathom: FathomStandin,
    loom: LoomStandin,
    pb: PocketBase,
) -> None:
    # Given a beat and two workers on a Redis of their own, with six transfers under way
    env = {**worker_env, "REDIS_URL": own_redis.url, "TRANSFER_MAX_ATTEMPTS": "8"}
    processes: list[CeleryProcess] = [
        CeleryBeat(env, tmp_path / "beat.log"),
        CeleryWorker(env, tmp_path / "w1.log", concurrency=2, name="w1"),
        CeleryWorker(env, tmp_path / "w2.log", concurrency=2, name="w2"),
    ]
    sink = RedisLogHandler(own_redis.url)
    logger = logging.getLogger("tasks.drill")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(sink)
    try:
        for process in processes:
            process.start()
        loom.set_fault("*", slow_patch_seconds=0.2)
        rows = [scenario.row(9100 + n, size=3 * MIB) for n in range(6)]
        scenario.wait(rows[0], lambda r: (r["bytes_done"] or 0) > 0, timeout=30)
        # And log records that reached Redis but not yet PocketBase
        for n in range(200):
            logger.info("drill record %d", n)
        sink.flush()
        # When Redis dies and comes back empty a few seconds later
        restart_empty(own_redis, down_seconds=3)
        loom.clear_faults()
        # Expect every row to complete, with one Loom video each
        completed_with_one_video_each(pb, loom, rows, scenario.user.id, range(9100, 9106))
        # And every process still up
        for process in processes:
            assert process.alive(), process.log_tail()
        # And no log record lost: the drill's and each transfer's own
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            logs = list(pb.list_all("logs", fields="msg,metadata,component", per_page=1000))
            drill = {r["msg"] for r in logs if r["msg"].startswith("drill record")}
            done = {
                r["metadata"].get("row_id")
                for r in logs
                if r["component"] == "transfer" and "completed" in r["msg"]
            }
            if len(drill) == 200 and set(rows) <= done:
                break
            time.sleep(0.5)
        assert len(drill) == 200 and set(rows) <= done
        # And the beat is leading again: its lock and schedule are back in the new Redis
        client = redis.Redis.from_url(own_redis.url)
        assert client.exists("redbeat::lock") and client.exists("redbeat::schedule")
        client.close()
    finally:
        logger.removeHandler(sink)
        sink.close()
        for process in processes:
            process.stop()


def test_pocketbase_restarted_mid_run(
    worker_env: dict[str, str],
    own_redis: LocalRedis,
    tmp_path: Path,
    fathom: FathomStandin,
    loom: LoomStandin,
    clean_standins: None,
) -> None:
    # Given a PocketBase of the stack's own, with a user whose six meetings are being moved
    server = start_pocketbase(tmp_path / "own-pb")
    pb = PocketBase(server.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    user = pb.create(
        "users",
        {
            "email": "drill@example.com",
            "password": "drill-pass-1234",
            "passwordConfirm": "drill-pass-1234",
        },
    )
    store_keys(pb, BOX, user["id"], fathom=FATHOM_KEY, loom=LOOM_KEY)
    env = {
        **worker_env,
        "PB_URL": server.url,
        "REDIS_URL": own_redis.url,
        "TRANSFER_MAX_ATTEMPTS": "8",
    }
    processes: list[CeleryProcess] = [
        CeleryBeat(env, tmp_path / "beat.log"),
        CeleryWorker(env, tmp_path / "w1.log", concurrency=2, name="w1"),
        CeleryWorker(env, tmp_path / "w2.log", concurrency=2, name="w2"),
    ]
    try:
        for process in processes:
            process.start()
        loom.set_fault("*", slow_patch_seconds=0.2)
        rows = []
        for n in range(6):
            fathom.add_meeting(FATHOM_KEY, 9200 + n, size=3 * MIB)
            rows.append(
                pb.create(
                    "queue",
                    {
                        "user_id": user["id"],
                        "meeting_id": str(9200 + n),
                        "status": "pending",
                        "queued_at": now_iso(),
                    },
                )["id"]
            )
        deadline = time.monotonic() + 30
        while not (pb.get("queue", rows[0])["bytes_done"] or 0):
            assert time.monotonic() < deadline, "no upload started"
            time.sleep(0.1)
        # When PocketBase dies under the running transfers and is back, with its data, 8 s later
        assert server.process is not None
        server.process.kill()
        server.process.wait(10)
        time.sleep(8)
        server.start()
        loom.clear_faults()
        # Expect every row completed, with one Loom video each, and none left processing
        states = completed_with_one_video_each(pb, loom, rows, user["id"], range(9200, 9206))
        # And the runs the outage stopped were not counted against the rows' attempts
        assert [s["attempts"] for s in states] == [0] * 6
        # And every process still up, having said what was away in a line, not a traceback
        for process in processes:
            assert process.alive(), process.log_tail()
            assert "Traceback" not in process.log_path.read_text(), process.log_tail()
    finally:
        for process in processes:
            process.stop()
        pb.close()
        server.stop()


def test_flower_rides_out_redis_restarting_empty(
    worker_env: dict[str, str], own_redis: LocalRedis, tmp_path: Path
) -> None:
    # Given Flower watching a worker, both on a Redis of their own
    env = {**worker_env, "REDIS_URL": own_redis.url}
    worker = CeleryWorker(env, tmp_path / "worker.log", concurrency=1, name="watched")
    flower = Flower(env, tmp_path / "flower.log", ("ops", "flower-drill-password"))
    try:
        worker.start()
        flower.start()
        # When Redis dies for a few seconds and comes back empty
        restart_empty(own_redis, down_seconds=4)
        # Expect Flower still up, its pages answering, and the worker seen again
        deadline = time.monotonic() + 60
        while "watched" not in flower.get("/api/workers?refresh=1", timeout=20).text:
            assert flower.alive(), flower.log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "Flower never saw the worker again"
            time.sleep(1)
        assert flower.get("/workers").status_code == 200
        assert flower.alive() and worker.alive()
    finally:
        flower.stop()
        worker.stop()

"""The transfer task in real Celery worker processes, with real PocketBase, Redis and stand-ins."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.standins.fathom import FathomStandin
from fathom2loom.standins.loom import LoomStandin
from tests.pipeline import BOX, FATHOM_KEY, FINAL, LOOM_KEY, MIB, MakeUser, Scenario
from tests.workers import CeleryProcess, CeleryWorker


@pytest.fixture(scope="module")
def worker(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryProcess]:
    """One worker process with a single slot: a test can tell whether waits hold it."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = CeleryWorker(worker_env, log, concurrency=1).start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def worker_stays_up(worker: CeleryProcess) -> Iterator[None]:
    yield
    if not worker.alive():
        pytest.fail(f"the worker died:\n{worker.log_tail()}")


def assert_no_secrets(text: str) -> None:
    for secret in (FATHOM_KEY, LOOM_KEY, "/_files/"):
        assert secret not in text


def test_a_meeting_moves_from_fathom_to_loom(
    scenario: Scenario, fathom: FathomStandin, loom: LoomStandin
) -> None:
    # Given a pending row for a 2 MiB recording that takes a moment to render
    row_id = scenario.row(7001, size=2 * MIB)
    fathom.set_fault("recording:7001", render_seconds=0.5)
    seen: list[str] = []
    # When the transfer task runs
    result = scenario.send(row_id)
    row = scenario.wait(row_id, lambda r: r["status"] in FINAL, seen=seen)
    # Expect pending → processing → completed, with the Loom video and identical bytes
    assert seen[0] == "pending" and "processing" in seen and seen[-1] == "completed"
    assert row["error_message"] == ""
    assert row["started_at"] and row["completed_at"] and row["started_at"] <= row["completed_at"]
    assert row["loom_url"] == f"https://www.loom.com/share/{row['loom_video_id']}"
    assert row["bytes_done"] == row["bytes_total"] == 2 * MIB
    assert loom.video_sha256(row["loom_video_id"]) == fathom.expected_sha256(7001)
    assert result.get(timeout=10)["status"] == "completed"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("fathom_401", "Fathom rejected the API key (401): update your Fathom key"),
        ("fathom_403", "ask its owner to share it with you"),
        ("fathom_404", "Fathom has no recording 7103 for this key (404): check the meeting id"),
        ("fathom_422", "Fathom has no downloadable media for recording 7104 (422)"),
        ("render_failed", "Fathom could not prepare the video (generation failed)"),
        ("loom_401", "Loom rejected the API key (401): update your Loom key"),
        ("no_loom_key", "No Loom API key is stored: add your Loom key, then retry"),
        ("bad_meeting_id", "meeting_id 'weekly sync' is not a Fathom recording id"),
    ],
)
def test_permanent_faults_fail_the_row_at_once(
    scenario: Scenario,
    fathom: FathomStandin,
    loom: LoomStandin,
    pb: PocketBase,
    setup: str,
    message: str,
) -> None:
    meeting: str | int = {"fathom_404": 7103, "fathom_422": 7104}.get(setup, 7100)
    if setup == "bad_meeting_id":
        meeting = "weekly sync"
    row_id = scenario.row(meeting, add=setup != "fathom_404")
    if setup == "fathom_401":
        fathom.set_fault(f"key:{FATHOM_KEY}", status=401)
    elif setup in ("fathom_403", "fathom_422"):
        fathom.set_fault(
            f"recording:{meeting}",
            status=int(setup[-3:]),
            endpoint="POST /recordings/{id}/download",
        )
    elif setup == "render_failed":
        fathom.set_fault(f"recording:{meeting}", render_failure="generation_failed")
    elif setup == "loom_401":
        loom.set_fault(f"key:{LOOM_KEY}", status=401)
    elif setup == "no_loom_key":
        keys = pb.first("api_keys", filter=f'user_id = "{scenario.user.id}"')
        assert keys is not None
        pb.update("api_keys", keys["id"], {"encrypted_loom": ""})
    scenario.send(row_id)
    row = scenario.finish(row_id)
    assert row["status"] == "failed"
    assert message in row["error_message"]
    assert row["attempts"] == 0  # Failed at once, not after retries
    assert_no_secrets(row["error_message"])


def test_a_5xx_burst_and_a_429_are_retried_to_completion(
    scenario: Scenario, fathom: FathomStandin, loom: LoomStandin
) -> None:
    row_id = scenario.row(7201)
    # More 503s than one call retries, so the task itself has to come back later
    fathom.set_fault(f"key:{FATHOM_KEY}", status=503, times=6)
    loom.set_fault(f"key:{LOOM_KEY}", status=429, times=1, retry_after=1)
    scenario.send(row_id)
    row = scenario.finish(row_id)
    assert row["status"] == "completed", row["error_message"]
    assert row["attempts"] >= 1 and row["error_message"] == ""


def test_a_fault_that_never_clears_fails_with_the_last_cause(
    scenario: Scenario, fathom: FathomStandin
) -> None:
    row_id = scenario.row(7251)
    fathom.set_fault(f"key:{FATHOM_KEY}", status=502)
    scenario.send(row_id)
    row = scenario.finish(row_id)
    assert row["status"] == "failed"
    assert row["error_message"] == (
        "Fathom had a temporary fault (502) (gave up after 4 attempts): retry later"
    )
    assert row["heartbeat_at"]


def test_a_slow_render_does_not_hold_a_worker_slot(
    scenario: Scenario, fathom: FathomStandin
) -> None:
    # Given one worker slot, a recording that renders for 6 s, and a quick one queued after it
    slow, quick = scenario.row(7301), scenario.row(7302)
    fathom.set_fault("recording:7301", render_seconds=6)
    scenario.send(slow)
    scenario.wait(slow, lambda r: bool(r["fathom_download_id"]))
    scenario.send(quick)
    # Expect the quick one to complete while the slow one still waits for Fathom
    assert scenario.finish(quick, timeout=20)["status"] == "completed"
    assert scenario.pb.get("queue", slow)["status"] == "processing"
    assert scenario.finish(slow)["status"] == "completed"


def test_cancel_while_waiting_for_fathom(
    scenario: Scenario, fathom: FathomStandin, loom: LoomStandin
) -> None:
    row_id = scenario.row(7401)
    fathom.set_fault("recording:7401", render_seconds=2)
    scenario.send(row_id)
    scenario.wait(row_id, lambda r: bool(r["fathom_download_id"]))
    scenario.cancel(row_id)
    time.sleep(4)  # Past the render: the task's next poll sees the cancel
    row = scenario.pb.get("queue", row_id)
    assert row["status"] == "cancelled" and not row["loom_video_id"]
    assert loom.stats()["videos_created_by_key"] == {}


def test_cancel_while_uploading(
    scenario: Scenario, loom: LoomStandin, celery_client: Celery
) -> None:
    row_id = scenario.row(7501, size=4 * MIB)
    loom.set_fault("*", slow_patch_seconds=0.25)
    result = scenario.send(row_id)
    # Progress shows on the row and in Celery's task state (what Flower displays)
    scenario.wait(row_id, lambda r: (r["bytes_done"] or 0) > 0)
    deadline = time.monotonic() + 10
    while result.state != "PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert result.state == "PROGRESS" and result.info["bytes_total"] == 4 * MIB
    scenario.cancel(row_id)
    assert result.get(timeout=20)["status"] == "cancelled"
    row = scenario.pb.get("queue", row_id)
    assert row["status"] == "cancelled"
    video = next(v for v in loom.videos() if v["id"] == row["loom_video_id"])
    assert video["deleted"] and video["received_bytes"] < 4 * MIB


@pytest.mark.parametrize("damage", ["moved", "tampered", "wrong_key"])
def test_bad_ciphertexts_fail_clearly_and_leak_nothing(
    scenario: Scenario, pb: PocketBase, make_user: MakeUser, damage: str
) -> None:
    row_id = scenario.row(7600 + ["moved", "tampered", "wrong_key"].index(damage))
    keys = pb.first("api_keys", filter=f'user_id = "{scenario.user.id}"')
    assert keys is not None
    if damage == "moved":
        other = make_user(f"other{secrets.token_hex(3)}")
        theirs = BOX.encrypt("someone-elses-key", user_id=other.id, field="encrypted_fathom")
        token = theirs
    elif damage == "tampered":
        token = keys["encrypted_fathom"][:-2] + (
            "AA" if keys["encrypted_fathom"][-2:] != "AA" else "BB"
        )
    else:
        token = KeyBox(secrets.token_bytes(32)).encrypt(
            FATHOM_KEY, user_id=scenario.user.id, field="encrypted_fathom"
        )
    pb.update("api_keys", keys["id"], {"encrypted_fathom": token})
    result = scenario.send(row_id)
    row = scenario.finish(row_id)
    assert row["status"] == "failed"
    assert row["error_message"].startswith("Your stored Fathom key cannot be decrypted (")
    assert row["error_message"].endswith("store it again, then retry")
    assert_no_secrets(row["error_message"] + str(result.get(timeout=10)))
    assert "someone-elses-key" not in row["error_message"]


def test_no_key_reaches_redis(scenario: Scenario, worker_env: dict[str, str]) -> None:
    row_id = scenario.row(7701)
    scenario.send(row_id).get(timeout=30)
    client = redis.Redis.from_url(worker_env["REDIS_URL"])
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"string":
            values: list[Any] = [client.get(key)]
        elif kind == b"list":
            values = client.lrange(key, 0, -1)
        elif kind == b"hash":
            values = list(client.hgetall(key).values())
        elif kind == b"zset":
            values = client.zrange(key, 0, -1)
        else:
            values = []
        for value in values:
            assert FATHOM_KEY.encode() not in value and LOOM_KEY.encode() not in value
    client.close()


def test_a_worker_killed_mid_upload_resumes_in_a_new_worker(
    scenario: Scenario,
    loom: LoomStandin,
    worker_env: dict[str, str],
    tmp_path: Path,
    worker: CeleryProcess,
) -> None:
    # Given a worker of its own, with a short visibility timeout so its message comes back soon
    worker.stop()
    env = {**worker_env, "CELERY_VISIBILITY_TIMEOUT_SECONDS": "5"}
    env["CELERY_RESTORE_INTERVAL_SECONDS"] = "1"
    first = CeleryWorker(env, tmp_path / "first.log").start()
    size = 6 * MIB
    row_id = scenario.row(7801, size=size)
    loom.set_fault("*", slow_patch_seconds=0.15)
    scenario.send(row_id)
    # When it is killed with SIGKILL halfway through the upload
    scenario.wait(row_id, lambda r: (r["bytes_done"] or 0) >= size // 3)
    first.kill()
    received_at_kill = loom.stats()["bytes_received"]
    loom.set_fault("*", slow_patch_seconds=0.0)
    second = CeleryWorker(env, tmp_path / "second.log").start()
    try:
        # Expect a new worker to finish the row: one Loom video, whole, and only the rest sent
        row = scenario.finish(row_id, timeout=60)
        assert row["status"] == "completed", row["error_message"]
        assert loom.stats()["videos_created_by_key"] == {f"fathom2loom-queue-{row_id}": 1}
        assert loom.video_sha256(row["loom_video_id"]) == scenario.fathom.expected_sha256(7801)
        sent_after = loom.stats()["bytes_received"] - received_at_kill
        assert 0 < sent_after < size
    finally:
        second.stop()
        first.stop()
        worker.start()

"""The transfer task in real Celery worker processes, with real PocketBase, Redis and stand-ins.

A beat runs beside the worker, as in production: a run that must wait records the wait on its row
and ends, and the dispatcher sends the row again when it is due. Rows a test sends itself are made
with `manual=True`, so the test holds that first task's result."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin
from fathom2loom.keybox import KeyBox, fingerprint_secret
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.providers.loom import LoomClient
from fathom2loom.providers.ratelimit import key_identity
from tests.conftest import ENCRYPTION_KEY
from tests.pipeline import (
    BOX,
    FATHOM_KEY,
    FINAL,
    LOOM_KEY,
    MIB,
    MakeUser,
    Scenario,
    video_key,
)
from tests.workers import CeleryBeat, CeleryProcess, CeleryWorker


@pytest.fixture(scope="module")
def worker(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryProcess]:
    """One worker process with a single slot: a test can tell whether waits hold it."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = CeleryWorker(worker_env, log, concurrency=1).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def beat(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryProcess]:
    log = tmp_path_factory.mktemp("beat") / "beat.log"
    process = CeleryBeat(worker_env, log).start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def processes_stay_up(worker: CeleryProcess, beat: CeleryProcess) -> Iterator[None]:
    yield
    for process in (worker, beat):
        if not process.alive():
            pytest.fail(f"a process died:\n{process.log_tail()}")


@pytest.fixture
def providers_for_user(loom: LoomStandin) -> Iterator[LoomClient]:
    """The user's Loom, as the user would use it (to delete a video, say)."""
    import httpx

    with httpx.Client(timeout=10) as http:
        yield LoomClient(LOOM_KEY, http=http, base_url=loom.url)


def assert_no_secrets(text: str) -> None:
    for secret in (FATHOM_KEY, LOOM_KEY, "/_files/"):
        assert secret not in text


def test_a_meeting_moves_from_fathom_to_loom(
    scenario: Scenario, fathom: FathomStandin, loom: LoomStandin
) -> None:
    # Given a pending row for a 2 MiB recording that takes a moment to render
    fathom.set_fault("recording:7001", render_seconds=0.5)
    row_id = scenario.row(7001, size=2 * MIB, manual=True)
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
    assert loom.stats()["videos_created_by_key"] == {video_key(scenario.user.id, 7001): 1}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("fathom_401", "Fathom rejected the API key (401): update your Fathom key"),
        ("fathom_403", "ask its owner to share it with you"),
        (
            "fathom_404",
            "Fathom has no recording 7103 for this key (404): check the meeting id and the"
            " Fathom key",
        ),
        ("fathom_422", "Fathom has no downloadable media for recording 7104 (422)"),
        ("render_failed", "Fathom could not prepare the video (generation failed)"),
        ("loom_401", "Loom rejected the API key (401): update your Loom key"),
        ("no_loom_key", "No Loom API key is stored: add your Loom key, then retry"),
        ("bad_meeting_id", "meeting id 'weekly sync' is not a Fathom recording id"),
        ("superscript_meeting_id", "meeting id '²' is not a Fathom recording id"),
        ("arabic_indic_meeting_id", "meeting id '١٠٠٤' is not a Fathom recording id"),
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
    if setup.endswith("meeting_id"):  # Rows written before ids were checked at the door
        meeting = {"bad": "weekly sync", "superscript": "²"}.get(setup.split("_")[0], "١٠٠٤")
        fathom.add_meeting(FATHOM_KEY, 1004, size=1000)  # What int("١٠٠٤") would have moved
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
    row_id = scenario.row(meeting, add=setup != "fathom_404")
    row = scenario.finish(row_id)
    assert row["status"] == "failed"
    assert message in row["error_message"]
    assert row["attempts"] == 0  # Failed at once, not after retries
    assert_no_secrets(row["error_message"])


def test_a_5xx_burst_and_a_429_are_retried_to_completion(
    scenario: Scenario, fathom: FathomStandin, loom: LoomStandin
) -> None:
    # More 503s than one call retries, so the transfer itself has to try again later
    # (Scoped to the transfer's own calls: a key check may call Fathom and Loom meanwhile.)
    fathom.set_fault("recording:7201", status=503, times=6)
    loom.set_fault(
        f"key:{LOOM_KEY}", status=429, times=1, retry_after=1, endpoint="POST /v1/videos"
    )
    row_id = scenario.row(7201)
    row = scenario.finish(row_id)
    assert row["status"] == "completed", row["error_message"]
    assert row["attempts"] >= 1 and row["error_message"] == ""


def test_a_fault_that_never_clears_fails_with_the_last_cause(
    scenario: Scenario, fathom: FathomStandin
) -> None:
    fathom.set_fault(f"key:{FATHOM_KEY}", status=502)
    row_id = scenario.row(7251)
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
    fathom.set_fault("recording:7301", render_seconds=6)
    slow = scenario.row(7301)
    scenario.wait(slow, lambda r: bool(r["fathom_download_id"]))
    quick = scenario.row(7302)
    # Expect the quick one to complete while the slow one still waits for Fathom
    assert scenario.finish(quick, timeout=20)["status"] == "completed"
    assert scenario.pb.get("queue", slow)["status"] == "processing"
    assert scenario.finish(slow)["status"] == "completed"


def test_cancel_while_waiting_for_fathom(
    scenario: Scenario, fathom: FathomStandin, loom: LoomStandin
) -> None:
    fathom.set_fault("recording:7401", render_seconds=5)
    row_id = scenario.row(7401)
    scenario.wait(row_id, lambda r: bool(r["fathom_download_id"]))
    scenario.cancel(row_id)
    time.sleep(6)  # Past the render: a run that came now would see the cancel
    row = scenario.pb.get("queue", row_id)
    assert row["status"] == "cancelled" and not row["loom_video_id"]
    assert loom.stats()["videos_created_by_key"] == {}
    assert row["position"] == 0


def test_cancel_while_uploading(
    scenario: Scenario, loom: LoomStandin, celery_client: Celery
) -> None:
    loom.set_fault("*", slow_patch_seconds=0.25)
    row_id = scenario.row(7501, size=4 * MIB, manual=True)
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
    row_id = scenario.row(7600 + ["moved", "tampered", "wrong_key"].index(damage), manual=True)
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
    row_id = scenario.row(7701, manual=True)
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
    # And the keys named in Redis (rate budgets) by an HMAC under the server's secret, not by a
    # plain hash anyone could test a guessed key against
    names = b" ".join(client.scan_iter())
    assert hashlib.sha256(FATHOM_KEY.encode()).hexdigest()[:24].encode() not in names
    secret = fingerprint_secret(bytes.fromhex(ENCRYPTION_KEY))
    assert key_identity(FATHOM_KEY, secret).encode() in names
    client.close()


def test_the_workers_own_log_holds_no_secret(scenario: Scenario, worker: CeleryProcess) -> None:
    # Given a transfer that completed (it requested, polled and streamed a signed URL)
    row_id = scenario.row(7711, manual=True)
    scenario.send(row_id).get(timeout=30)
    # Expect stdout (what `docker-compose logs` shows) to hold no key, signed URL or request line
    text = worker.log_tail(10**7)
    assert "completed: Loom video" in text
    for shape in (FATHOM_KEY, LOOM_KEY, "/_files/", "HTTP Request:"):
        assert shape not in text, shape


def test_a_worker_killed_mid_upload_resumes_in_a_new_worker(
    scenario: Scenario,
    loom: LoomStandin,
    worker_env: dict[str, str],
    tmp_path: Path,
    worker: CeleryProcess,
) -> None:
    # Given a worker of its own (the module's worker stopped), transferring a row slowly
    worker.stop()
    first = CeleryWorker(worker_env, tmp_path / "first.log").start()
    size = 6 * MIB
    loom.set_fault("*", slow_patch_seconds=0.15)
    row_id = scenario.row(7801, size=size)
    # When it is killed with SIGKILL a third of the way through the upload
    scenario.wait(row_id, lambda r: (r["bytes_done"] or 0) >= size // 3)
    first.kill()
    received_at_kill = loom.stats()["bytes_received"]
    loom.clear_faults()
    second = CeleryWorker(worker_env, tmp_path / "second.log").start()
    try:
        # Expect the dispatcher to hand the row to the new worker once the dead one's lease ran
        # out (3 s here): one Loom video, whole, and only the rest of the bytes sent
        row = scenario.finish(row_id, timeout=60)
        assert row["status"] == "completed", row["error_message"]
        assert loom.stats()["videos_created_by_key"] == {video_key(scenario.user.id, 7801): 1}
        assert loom.video_sha256(row["loom_video_id"]) == scenario.fathom.expected_sha256(7801)
        sent_after = loom.stats()["bytes_received"] - received_at_kill
        assert 0 < sent_after < size
        assert row["attempts"] == 1  # The death was counted
    finally:
        second.stop()
        first.stop()
        worker.start()


def test_a_worker_told_to_stop_hands_its_row_back_at_once(
    scenario: Scenario,
    loom: LoomStandin,
    worker_env: dict[str, str],
    tmp_path: Path,
    worker: CeleryProcess,
) -> None:
    # Given a worker of its own in the middle of a slow upload, and another one idle
    worker.stop()
    first = CeleryWorker(worker_env, tmp_path / "first.log").start()
    size = 6 * MIB
    loom.set_fault("*", slow_patch_seconds=0.3)
    row_id = scenario.row(7851, size=size)
    scenario.wait(row_id, lambda r: (r["bytes_done"] or 0) > 0)
    second = CeleryWorker(worker_env, tmp_path / "second.log").start()
    try:
        # When the first is told to stop (SIGTERM to its main process, as `docker stop` does)
        first.terminate()
        assert first.process is not None
        first.process.wait(15)  # It exits within a chunk or two, not when the upload is done
        held = scenario.pb.get("queue", row_id)
        assert held["bytes_done"] < size
        # Expect the row handed back cleanly (no attempt counted) and finished by the second
        loom.clear_faults()
        row = scenario.finish(row_id, timeout=30)
        assert row["status"] == "completed", row["error_message"]
        assert row["attempts"] == 0
        assert loom.stats()["videos_created_by_key"] == {video_key(scenario.user.id, 7851): 1}
        assert loom.video_sha256(row["loom_video_id"]) == scenario.fathom.expected_sha256(7851)
        assert "handed back" in first.log_tail(20000)
    finally:
        second.stop()
        first.stop()
        worker.start()


def test_a_stale_download_after_fathom_restarts_is_requested_again(
    scenario: Scenario, fathom: FathomStandin, loom: LoomStandin
) -> None:
    # Given a row waiting on Fathom's render when Fathom's side restarts and forgets it
    fathom.set_fault("recording:7901", render_seconds=4)
    row_id = scenario.row(7901)
    first = scenario.wait(row_id, lambda r: bool(r["next_attempt_at"]))["fathom_download_id"]
    fathom.restart()
    # Expect a new download and a completed row: one video
    row = scenario.finish(row_id)
    assert row["status"] == "completed", row["error_message"]
    assert row["fathom_download_id"] != first
    assert loom.stats()["videos_created_by_key"] == {video_key(scenario.user.id, 7901): 1}


@pytest.mark.parametrize("garble", ["invalid_json", "html"])
def test_an_unreadable_download_status_is_retried_to_completion(
    scenario: Scenario, fathom: FathomStandin, garble: str
) -> None:
    endpoint = "GET /recordings/{id}/downloads/{download_id}"
    fathom.set_fault("*", endpoint=endpoint, garble=garble, times=2)
    fathom.set_fault("recording:7951", render_seconds=0.3)
    row_id = scenario.row(7951)
    row = scenario.finish(row_id)
    assert row["status"] == "completed", row["error_message"]
    assert row["attempts"] == 2


def test_an_unreadable_download_status_that_persists_fails_the_row(
    scenario: Scenario, fathom: FathomStandin
) -> None:
    endpoint = "GET /recordings/{id}/downloads/{download_id}"
    fathom.set_fault("*", endpoint=endpoint, garble="invalid_json")
    row_id = scenario.row(7952)
    row = scenario.finish(row_id)
    assert row["status"] == "failed"
    assert row["error_message"] == (
        "Fathom sent a download's status we cannot read (not JSON: application/json)"
        " (gave up after 4 attempts): retry later"
    )


def test_a_meeting_missing_a_field_still_moves(
    scenario: Scenario, fathom: FathomStandin, loom: LoomStandin
) -> None:
    fathom.set_fault("*", endpoint="GET /meetings", garble="drop:recording_start_time")
    row_id = scenario.row(7961)
    row = scenario.finish(row_id)
    assert row["status"] == "completed", row["error_message"]
    assert loom._videos[row["loom_video_id"]].title == "Fathom recording 7961"


def test_the_loom_video_deleted_under_a_running_row_is_made_again(
    scenario: Scenario, fathom: FathomStandin, loom: LoomStandin, providers_for_user: Any
) -> None:
    loom.set_fault("*", slow_patch_seconds=0.1)
    row_id = scenario.row(7971, size=3 * MIB)
    first = scenario.wait(row_id, lambda r: (r["bytes_done"] or 0) > 0)["loom_video_id"]
    providers_for_user.delete_video(first)
    loom.clear_faults()
    row = scenario.finish(row_id)
    assert row["status"] == "completed", row["error_message"]
    assert row["loom_video_id"] != first
    assert loom.video_sha256(row["loom_video_id"]) == fathom.expected_sha256(7971)
    deleted = {v["id"]: v["deleted"] for v in loom.videos()}
    assert deleted[first] and not deleted[row["loom_video_id"]]
    key = video_key(scenario.user.id, 7971)
    assert loom.stats()["videos_created_by_key"] == {key: 1, f"{key}-g1": 1}


def test_a_write_pocketbase_refuses_fails_the_row(scenario: Scenario, pb: PocketBase) -> None:
    queue = pb.request("GET", "/api/collections/queue")
    original = [dict(f) for f in queue["fields"]]
    narrowed = [dict(f, max=1000) if f["name"] == "bytes_total" else f for f in original]
    pb.request("PATCH", "/api/collections/queue", json={"fields": narrowed})
    try:
        row_id = scenario.row(7981)
        row = scenario.finish(row_id)
    finally:
        pb.request("PATCH", "/api/collections/queue", json={"fields": original})
    assert row["status"] == "failed"
    assert "bytes_total" in row["error_message"]
    assert row["error_message"].endswith("ask the operator to check the queue collection")


def test_a_run_past_its_soft_time_limit_is_counted_and_resumed(
    scenario: Scenario, loom: LoomStandin
) -> None:
    # Given a run allowed 3 s (time limits travel in the message), for a longer upload
    loom.set_fault("*", slow_patch_seconds=0.3)
    row_id = scenario.row(7991, size=6 * MIB, manual=True)
    scenario.celery.send_task(
        "fathom2loom.transfer", args=[row_id], queue="transfers", soft_time_limit=3, time_limit=30
    )
    # Expect the limit to end that run with a counted attempt, and the next run to finish
    row = scenario.wait(row_id, lambda r: r["attempts"] >= 1, timeout=30)
    assert row["status"] == "processing"
    loom.clear_faults()
    row = scenario.finish(row_id, timeout=60)
    assert row["status"] == "completed", row["error_message"]
    assert scenario.fathom.expected_sha256(7991) == loom.video_sha256(row["loom_video_id"])

"""The transfer's rules (`fathom2loom.transfer`) run in this process, without Celery, against real
PocketBase, Redis and the stand-ins: each run's step, the row it leaves, and every fault path."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin
from fathom2loom.api_keys import KeyStore, store_keys
from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.dates import now_iso
from fathom2loom.providers.factory import Providers
from fathom2loom.providers.http import RetryPolicy
from fathom2loom.queue_store import QueueStore
from fathom2loom.settings import Settings
from fathom2loom.transfer import Done, RunControl, Step, TransferPorts, Wait, run_transfer
from fathom2loom.transfer.rules import idempotency_key
from fathom2loom.transfer.run import MAX_EXCUSED_OUTAGES
from tests.conftest import ENCRYPTION_KEY, make_settings

FATHOM_KEY = "fathom-rules-key-123456"
LOOM_KEY = "loom-rules-key-654321"
MIB = 1024 * 1024


class Rig:
    """One user with keys, and a way to run a row's transfer run after run, as the dispatcher
    would (sleeping through each recorded wait)."""

    def __init__(self, pb: PocketBase, ports: TransferPorts, fathom: FathomStandin) -> None:
        self.pb, self.ports, self.fathom = pb, ports, fathom
        user = pb.create(
            "users",
            {"email": "rules@u.test", "password": "p" * 12, "passwordConfirm": "p" * 12},
        )
        self.user_id = str(user["id"])
        box = KeyBox(bytes.fromhex(ENCRYPTION_KEY))
        store_keys(pb, box, self.user_id, fathom=FATHOM_KEY, loom=LOOM_KEY)

    def row(self, recording: int | str, size: int = 200_000, add: bool = True) -> str:
        if add and str(recording).isdigit():
            self.fathom.add_meeting(FATHOM_KEY, int(recording), size=size)
        body = {
            "user_id": self.user_id,
            "meeting_id": str(recording),
            "status": "pending",
            "queued_at": now_iso(),
        }
        return str(self.pb.create("queue", body)["id"])

    def run(self, row_id: str, control: RunControl | None = None) -> Step:
        return run_transfer(row_id, self.ports, control)

    def run_until_done(
        self, row_id: str, control: RunControl | None = None, runs: int = 40
    ) -> tuple[Done, list[Wait]]:
        waits: list[Wait] = []
        for _ in range(runs):
            step = self.run(row_id, control)
            if isinstance(step, Done):
                return step, waits
            waits.append(step)
            time.sleep(step.seconds)
        raise AssertionError(f"no end after {runs} runs: {waits[-3:]}")

    def get(self, row_id: str) -> dict[str, Any]:
        return self.pb.get("queue", row_id)


def rig_settings(settings: Settings, fathom: FathomStandin, loom: LoomStandin) -> Settings:
    return make_settings(
        settings.pb_url,
        settings.redis_url,
        fathom_base_url=fathom.url,
        loom_base_url=loom.url,
        fathom_poll_initial_seconds=0.05,
        fathom_poll_max_seconds=0.2,
        loom_poll_initial_seconds=0.05,
        loom_poll_max_seconds=0.2,
        loom_chunk_bytes=64 * 1024,
        transfer_retry_base_seconds=0.05,
        transfer_retry_max_seconds=0.2,
        transfer_max_attempts=4,
        transfer_inline_wait_seconds=0,
        transfer_progress_interval_seconds=0.05,
    )


def stop_at_first_chunk() -> RunControl:
    """A run that loses its lease once the first chunk is up (a worker killed mid-upload)."""
    sent: list[int] = []
    return RunControl(lambda: bool(sent), lambda done, total: sent.append(done))


@pytest.fixture
def make_rig(
    pb: PocketBase,
    redis_client: redis.Redis,
    settings: Settings,
    fathom_standin: FathomStandin,
    loom_standin: LoomStandin,
) -> Iterator[Callable[..., Rig]]:
    made: list[Providers] = []

    def factory(http_hook: Callable[[httpx.Request], None] | None = None, **overrides: Any) -> Rig:
        configured = rig_settings(settings, fathom_standin, loom_standin)
        if overrides:
            configured = configured.model_copy(update=overrides)
        providers = Providers.from_settings(
            configured, redis_client, policy=RetryPolicy(attempts=2, backoff_base=0.01)
        )
        if http_hook is not None:
            providers.api_http.event_hooks["request"].append(http_hook)
        made.append(providers)
        box = KeyBox(bytes.fromhex(ENCRYPTION_KEY))
        ports = TransferPorts(QueueStore(pb), KeyStore(pb, box), providers, configured)
        fathom_standin.add_key(FATHOM_KEY)
        return Rig(pb, ports, fathom_standin)

    yield factory
    for providers in made:
        providers.close()


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()


def test_a_row_goes_through_its_waits_to_completed(
    rig: Rig, fathom_standin: FathomStandin, loom_standin: LoomStandin
) -> None:
    # Given a recording that renders for a moment and a Loom that processes for a moment
    fathom_standin.set_fault("recording:11", render_seconds=0.3)
    loom_standin.processing_seconds = 0.3
    row_id = rig.row(11, size=MIB)
    # When the dispatcher runs it whenever it is due
    done, waits = rig.run_until_done(row_id)
    # Expect waits first for Fathom, then for Loom, each recorded on the row as it happened
    reasons = [w.reason for w in waits]
    assert (
        reasons[0] == "Fathom is preparing the video"
        and reasons[-1] == "Loom is processing the video"
    )
    row = rig.get(row_id)
    assert done == Done("completed", row["loom_video_id"])
    assert row["status"] == "completed" and row["error_message"] == row["wait_reason"] == ""
    assert row["next_attempt_at"] == "" and row["attempts"] == 0
    state = row["transfer_state"]
    assert state["open_run"] is False and state["download_requests"] == 1
    # Each phase counts its own waits: Loom's polls did not start where Fathom's left off
    assert state["render_polls"] >= 1 and 1 <= state["loom_polls"] <= reasons.count(
        "Loom is processing the video"
    )
    assert loom_standin.video_sha256(row["loom_video_id"]) == fathom_standin.expected_sha256(11)
    key = idempotency_key(rig.user_id, 11, 0)
    assert loom_standin.stats()["videos_created_by_key"] == {key: 1}


def test_a_wait_is_recorded_on_the_row_and_an_early_run_changes_nothing(
    rig: Rig, fathom_standin: FathomStandin
) -> None:
    fathom_standin.set_fault("recording:12", render_seconds=30)
    row_id = rig.row(12)
    first = rig.run(row_id)
    assert isinstance(first, Wait) and first.reason == "Fathom is preparing the video"
    row = rig.get(row_id)
    assert row["status"] == "processing" and row["next_attempt_at"] and row["wait_reason"]
    # A duplicate delivery before the wait is over leaves the row as it is
    early = rig.run(row_id)
    assert isinstance(early, Wait) and early.seconds <= first.seconds
    assert rig.get(row_id)["updated"] == row["updated"]


def test_a_stale_download_id_leads_to_a_new_download(
    rig: Rig, fathom_standin: FathomStandin, loom_standin: LoomStandin
) -> None:
    # Given a row waiting on a render, and then Fathom's side restarts and forgets it
    fathom_standin.set_fault("recording:13", render_seconds=0.5)
    row_id = rig.row(13)
    assert isinstance(rig.run(row_id), Wait)
    stale = rig.get(row_id)["fathom_download_id"]
    fathom_standin.restart()
    # Expect the next runs to ask for a new download and finish, never "no such recording"
    done, _ = rig.run_until_done(row_id)
    row = rig.get(row_id)
    assert done.status == "completed", row["error_message"]
    assert row["fathom_download_id"] != stale
    assert row["transfer_state"]["download_requests"] == 2
    assert len(loom_standin.stats()["videos_created_by_key"]) == 1


def test_a_download_that_keeps_failing_ends_with_fathoms_reason(
    rig: Rig, fathom_standin: FathomStandin
) -> None:
    fathom_standin.set_fault("recording:14", render_failure="generation_failed")
    row_id = rig.row(14)
    done, waits = rig.run_until_done(row_id)
    row = rig.get(row_id)
    assert done.status == "failed"
    assert row["error_message"] == (
        "Fathom could not prepare the video (generation failed) (5 downloads requested):"
        " try again later"
    )
    # Each failed render was followed by a fresh request, five in all
    assert row["transfer_state"]["download_requests"] == 5 and waits


@pytest.mark.parametrize(
    ("endpoint", "garble"),
    [
        ("GET /recordings/{id}/downloads/{download_id}", "invalid_json"),
        ("GET /recordings/{id}/downloads/{download_id}", "html"),
        ("GET /recordings/{id}/downloads/{download_id}", "drop:status"),
        ("POST /recordings/{id}/download", "drop:download_id"),
        ("POST /v1/videos", "invalid_json"),
        ("GET /v1/videos/{id}", "drop:status"),
        ("HEAD /tus/{upload_id}", "header:Upload-Offset=abc"),
        ("PATCH /tus/{upload_id}", "header:Upload-Offset=-1"),
    ],
)
def test_a_garbled_answer_is_retried_then_the_row_completes(
    rig: Rig,
    fathom_standin: FathomStandin,
    loom_standin: LoomStandin,
    endpoint: str,
    garble: str,
) -> None:
    # Given a provider that answers one request of a kind with something we cannot read
    standin = loom_standin if endpoint.split()[1].startswith(("/v1", "/tus")) else fathom_standin
    fathom_standin.set_fault("recording:15", render_seconds=0.2)
    standin.set_fault("*", endpoint=endpoint, garble=garble, times=1)
    row_id = rig.row(15, size=300_000)
    # Expect the row to complete; the fault counted as an attempt, nothing escaped
    done, _ = rig.run_until_done(row_id)
    row = rig.get(row_id)
    assert done.status == "completed", row["error_message"]
    assert not [f for f in standin.stats()["faults"] if "garble" in f["extra"]]
    assert loom_standin.video_sha256(row["loom_video_id"]) == fathom_standin.expected_sha256(15)


def test_an_answer_that_stays_garbled_fails_the_row_with_a_readable_message(
    rig: Rig, fathom_standin: FathomStandin
) -> None:
    fathom_standin.set_fault(
        "*", endpoint="GET /recordings/{id}/downloads/{download_id}", garble="html"
    )
    fathom_standin.set_fault("recording:16", render_seconds=5)
    row_id = rig.row(16)
    done, _ = rig.run_until_done(row_id)
    row = rig.get(row_id)
    assert done.status == "failed"
    assert row["error_message"] == (
        "Fathom sent a download's status we cannot read (not JSON: text/html)"
        " (gave up after 4 attempts): retry later"
    )
    assert row["attempts"] == 3 and row["transfer_state"]["open_run"] is False


def test_a_meeting_fathom_describes_badly_still_moves_under_a_plain_title(
    rig: Rig, fathom_standin: FathomStandin, loom_standin: LoomStandin
) -> None:
    fathom_standin.set_fault("*", endpoint="GET /meetings", garble="drop:title")
    row_id = rig.row(17)
    done, _ = rig.run_until_done(row_id)
    assert done.status == "completed"
    video = rig.get(row_id)["loom_video_id"]
    assert loom_standin.stats()["videos"][0]["id"] == video
    assert loom_standin._videos[video].title == "Fathom recording 17"


def test_a_video_deleted_under_the_row_is_made_again(
    rig: Rig, fathom_standin: FathomStandin, loom_standin: LoomStandin, providers: Providers
) -> None:
    # Given a row stopped halfway through its upload, whose video is then deleted in Loom
    row_id = rig.row(18, size=MIB)
    assert rig.run_until_done(row_id, stop_at_first_chunk())[0] == Done("stopped")
    first = rig.get(row_id)["loom_video_id"]
    providers.loom(LOOM_KEY).delete_video(first)
    # Expect the next runs to make a new video (a new key generation) and finish it whole
    done, _ = rig.run_until_done(row_id)
    row = rig.get(row_id)
    assert done.status == "completed" and row["loom_video_id"] != first
    assert loom_standin.video_sha256(row["loom_video_id"]) == fathom_standin.expected_sha256(18)
    assert loom_standin.stats()["videos_created_by_key"] == {
        idempotency_key(rig.user_id, 18, 0): 1,
        idempotency_key(rig.user_id, 18, 1): 1,
    }
    # The run that stopped without saying how it ended was counted by the next one
    assert row["transfer_state"]["loom_generation"] == 1


def test_a_retry_after_loom_failed_the_video_makes_a_new_one(
    rig: Rig, fathom_standin: FathomStandin, loom_standin: LoomStandin
) -> None:
    loom_standin.set_fault("*", fail_processing=True, times=1)
    row_id = rig.row(19)
    done, _ = rig.run_until_done(row_id)
    failed = rig.get(row_id)
    assert done.status == "failed"
    assert failed["error_message"].startswith(
        "Loom could not process the video (processing_failed)"
    )
    # When the user retries, the old end is cleared and a new video is made
    rig.pb.update("queue", row_id, {"status": "pending"})
    done, _ = rig.run_until_done(row_id)
    row = rig.get(row_id)
    assert done.status == "completed" and row["loom_video_id"] != failed["loom_video_id"]
    assert row["error_message"] == "" and row["completed_at"] > failed["completed_at"]
    # And a second row for the same recording, later, gets the finished video: no third one
    second = rig.row(19, add=False)
    done, _ = rig.run_until_done(second)
    assert rig.get(second)["loom_video_id"] == row["loom_video_id"]
    assert len(loom_standin.stats()["videos_created_by_key"]) == 2


def test_an_unexpected_exception_is_counted_and_ends_in_a_failed_row(
    make_rig: Callable[..., Rig],
) -> None:
    # Given a library that raises something nobody planned for on every Loom call
    def explode(request: httpx.Request) -> None:
        if request.url.path.startswith("/v1/"):
            raise RuntimeError("a library bug")

    rig = make_rig(http_hook=explode)
    row_id = rig.row(20)
    done, waits = rig.run_until_done(row_id)
    row = rig.get(row_id)
    assert done.status == "failed"
    assert sum(w.reason.startswith("Unexpected error") for w in waits) == 3
    assert row["error_message"] == (
        "Unexpected error in the transfer (RuntimeError; details in the logs)"
        " (gave up after 4 attempts): retry later"
    )


def test_a_run_that_died_is_counted_by_the_next_one(
    rig: Rig, fathom_standin: FathomStandin
) -> None:
    # Given runs that each lose their lease mid-upload (a worker killed, Redis lost) and so
    # end without recording anything
    row_id = rig.row(21, size=MIB)
    for expected_attempts in (0, 1, 2, 3):
        step = rig.run_until_done(row_id, stop_at_first_chunk())[0]
        assert step == Done("stopped")
        assert rig.get(row_id)["attempts"] == expected_attempts
    # Expect the next run to count the fourth death and fail the row, saying what happened
    assert rig.run(row_id) == Done("failed")
    row = rig.get(row_id)
    assert row["error_message"].startswith("The transfer stopped unexpectedly 4 times")


def test_runs_stopped_by_a_pocketbase_outage_are_not_counted_up_to_a_limit(
    rig: Rig, fathom_standin: FathomStandin
) -> None:
    # Given runs that each end without a word, every one after PocketBase went down under it
    row_id = rig.row(23, size=MIB)

    def outage_stopped() -> RunControl:
        control = stop_at_first_chunk()
        control.previous_run_excused = lambda: True
        return control

    # Expect the first MAX_EXCUSED_OUTAGES of them not counted as attempts
    for _ in range(MAX_EXCUSED_OUTAGES + 1):
        assert rig.run_until_done(row_id, outage_stopped())[0] == Done("stopped")
    assert rig.get(row_id)["attempts"] == 0
    # And the ones after counted, so a row that itself brings PocketBase down still ends
    assert rig.run_until_done(row_id, outage_stopped())[0] == Done("stopped")
    assert rig.get(row_id)["attempts"] == 1


def test_permanent_faults_fail_at_once(rig: Rig, fathom_standin: FathomStandin) -> None:
    fathom_standin.set_fault("*", status=422, endpoint="POST /recordings/{id}/download")
    row_id = rig.row(22)
    assert rig.run(row_id) == Done("failed")
    row = rig.get(row_id)
    assert row["error_message"] == "Fathom has no downloadable media for recording 22 (422)"
    assert row["attempts"] == 0


def test_a_write_pocketbase_refuses_fails_the_row_instead_of_retrying(
    rig: Rig, pb: PocketBase
) -> None:
    # Given a queue collection that refuses the file's size (an operator's schema change)
    queue = pb.request("GET", "/api/collections/queue")
    fields = [dict(f) for f in queue["fields"]]
    original = [dict(f) for f in fields]
    for field in fields:
        if field["name"] == "bytes_total":
            field["max"] = 1000
    pb.request("PATCH", "/api/collections/queue", json={"fields": fields})
    try:
        row_id = rig.row(23)
        done, _ = rig.run_until_done(row_id)
        row = rig.get(row_id)
    finally:
        pb.request("PATCH", "/api/collections/queue", json={"fields": original})
    assert done == Done("failed")
    assert row["error_message"].startswith("PocketBase refused to save the transfer's state")
    assert "bytes_total" in row["error_message"]
    assert row["error_message"].endswith("ask the operator to check the queue collection")


def test_a_second_active_row_for_the_same_meeting_is_refused(rig: Rig, pb: PocketBase) -> None:
    rig.row(24)
    with pytest.raises(Exception, match="Value must be unique") as refused:
        rig.row(24, add=False)
    assert "meeting_id" in str(refused.value)


def test_the_meeting_is_found_by_its_time_however_old(
    rig: Rig, fathom_standin: FathomStandin, loom_standin: LoomStandin, pb: PocketBase
) -> None:
    from datetime import UTC, datetime, timedelta

    # Given a meeting from long ago, behind 60 newer ones (more than the pages searched)
    old = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
    fathom_standin.add_meeting(FATHOM_KEY, 31, title="Kick-off with Acme", created_at=old)
    for n in range(60):
        fathom_standin.add_meeting(FATHOM_KEY, 1000 + n, created_at=old + timedelta(days=n + 1))
    # When one row knows when the recording started and another does not
    known = rig.row(31, add=False)
    pb.update("queue", known, {"recorded_at": "2024-03-05 08:00:00.000Z"})
    done, _ = rig.run_until_done(known)
    # Expect the title found with the time window, and the notes carried to Loom
    title, description = loom_standin.video_text(rig.get(known)["loom_video_id"])
    assert done.status == "completed" and title == "Kick-off with Acme"
    assert "Action items\n- [ ] Send the follow-up notes" in description
    assert description.endswith("Moved from Fathom by fathom2loom (recording 31).")
    # While without it the search stops at the newest pages and the video gets a plain title
    fathom_standin.add_meeting(FATHOM_KEY, 32, title="Lost in the past", created_at=old)
    unknown = rig.row(32, add=False)
    done, _ = rig.run_until_done(unknown)
    title, description = loom_standin.video_text(rig.get(unknown)["loom_video_id"])
    assert title == "Fathom recording 32" and description.startswith("Moved from Fathom")

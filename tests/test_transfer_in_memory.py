"""`run_transfer` against the in-memory ports of `tests/fakes.py`: every path of a run, in
milliseconds. The same paths against real PocketBase, Redis and the stand-ins are in
`test_transfer_rules.py`; these pin the run's wiring of the rules to the ports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from fathom2loom.errors import (
    LinkExpired,
    PocketBaseRequestError,
    RateLimited,
    TemporaryFault,
)
from fathom2loom.queue_rows import QueueRow, Status, TransferState
from fathom2loom.transfer import Done, RunControl, Step, TransferPorts, Wait, run_transfer
from fathom2loom.transfer.rules import RENDERING, idempotency_key
from fathom2loom.transfer.run import HANDED_BACK
from tests.conftest import make_settings
from tests.fakes import FakeFathom, FakeKeys, FakeLoom, FakeProviders, FakeRows

USER = "user1"
RECORDING = 1004


@dataclass
class Rig:
    rows: FakeRows = field(default_factory=FakeRows)
    keys: FakeKeys = field(default_factory=FakeKeys)
    providers: FakeProviders = field(default_factory=FakeProviders)
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys.give(USER)
        settings = make_settings(
            "http://127.0.0.1:9",
            "redis://127.0.0.1:9/0",
            **{
                "transfer_inline_wait_seconds": 0,
                "transfer_max_attempts": 4,
                "transfer_max_download_requests": 3,
                "transfer_max_video_generations": 3,
                "transfer_progress_interval_seconds": 1e-9,
                **self.overrides,
            },
        )
        self.ports = TransferPorts(self.rows, self.keys, self.providers, settings)

    @property
    def fathom(self) -> FakeFathom:
        return self.providers.fathom_api

    @property
    def loom(self) -> FakeLoom:
        return self.providers.loom_api

    def queue(self, meeting_id: str = str(RECORDING), size: int = 1000) -> str:
        if meeting_id.isascii() and meeting_id.isdigit():
            self.fathom.add(int(meeting_id), size)
        return self.rows.add(USER, meeting_id)

    def run(self, row_id: str, control: RunControl | None = None) -> Step:
        return run_transfer(row_id, self.ports, control)

    def run_until_done(self, row_id: str, runs: int = 30) -> tuple[Done, list[Wait]]:
        """Run after run, as the dispatcher would once each recorded wait is over."""
        waits: list[Wait] = []
        for _ in range(runs):
            step = self.run(row_id)
            if isinstance(step, Done):
                return step, waits
            waits.append(step)
            self.rows.make_due(row_id)
        raise AssertionError(f"no end after {runs} runs: {waits[-3:]}")

    def row(self, row_id: str) -> QueueRow:
        return self.rows.records[row_id]


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_a_row_is_moved_and_completed(rig: Rig) -> None:
    row_id = rig.queue(size=1000)
    done, waits = rig.run_until_done(row_id)
    row = rig.row(row_id)
    assert done == Done(Status.COMPLETED, row.loom_video_id) and waits == []
    assert (row.status, row.bytes_done, row.bytes_total) == (Status.COMPLETED, 1000, 1000)
    assert row.loom_url == f"https://loom.test/share/{row.loom_video_id}"
    assert row.started_at and row.completed_at and row.position == 0
    assert row.state.open_run is False and row.error_message == ""
    assert rig.loom.videos[row.loom_video_id].received == 1000
    assert rig.loom.by_key == {idempotency_key(USER, RECORDING, 0): row.loom_video_id}
    assert rig.fathom.count("request_download") == 1


def test_a_render_and_loom_processing_are_waited_out_between_runs() -> None:
    rig = Rig(providers=FakeProviders(FakeFathom(render_polls=3), FakeLoom(processing_polls=2)))
    row_id = rig.queue()
    done, waits = rig.run_until_done(row_id)
    reasons = [wait.reason for wait in waits]
    assert done.status == Status.COMPLETED
    assert reasons == [RENDERING] * 3 + ["Loom is processing the video"] * 2
    assert rig.fathom.count("request_download") == 1  # the kept download was polled
    assert rig.row(row_id).attempts == 0  # waits are not faults


def test_a_deferred_row_records_its_wait_and_an_early_duplicate_leaves_it_be() -> None:
    rig = Rig(providers=FakeProviders(FakeFathom(render_polls=2)))
    row_id = rig.queue()
    step = rig.run(row_id)
    row = rig.row(row_id)
    assert isinstance(step, Wait) and row.wait_reason == RENDERING and row.next_attempt_at
    again = rig.run(row_id)
    assert isinstance(again, Wait) and again.reason == RENDERING
    assert again.seconds == pytest.approx(row.due_in(), abs=0.5)
    assert rig.fathom.count("download_status") == 0


def test_a_download_fathom_lost_is_asked_for_again() -> None:
    rig = Rig(providers=FakeProviders(FakeFathom(render_polls=1)))
    row_id = rig.queue()
    assert isinstance(rig.run(row_id), Wait)
    rig.fathom.forget_downloads()  # Fathom's side restarted
    rig.rows.make_due(row_id)
    done, _ = rig.run_until_done(row_id)
    assert done.status == Status.COMPLETED
    assert rig.fathom.count("request_download") == 2
    assert rig.row(row_id).state.last_gone == "Fathom no longer knew the download"


def test_downloads_that_keep_failing_fail_the_row_saying_why(rig: Rig) -> None:
    rig.fathom.fail_renders = "media_unavailable"
    row_id = rig.queue()
    done, waits = rig.run_until_done(row_id)
    assert done.status == Status.FAILED and len(waits) == 3
    assert rig.row(row_id).error_message == (
        "Fathom could not prepare the video (media unavailable) (3 downloads requested):"
        " try again later"
    )


def test_an_expired_link_mid_stream_asks_for_a_new_download(rig: Rig) -> None:
    row_id = rig.queue()
    rig.loom.fail_next("upload", LinkExpired("Fathom", "The file link expired: asking again"))
    done, waits = rig.run_until_done(row_id)
    assert done.status == Status.COMPLETED and waits == []  # asked again within the run
    assert rig.fathom.count("request_download") == 2
    assert rig.row(row_id).attempts == 0


def test_a_video_loom_lost_is_made_again_under_the_next_key(rig: Rig) -> None:
    rig.loom.processing_polls = 1
    row_id = rig.queue()
    assert isinstance(rig.run(row_id), Wait)  # uploaded; Loom is processing
    first = rig.row(row_id).loom_video_id
    del rig.loom.videos[first]  # deleted in Loom meanwhile
    rig.rows.make_due(row_id)
    done, _ = rig.run_until_done(row_id)
    row = rig.row(row_id)
    assert done.status == Status.COMPLETED and row.loom_video_id != first
    assert rig.loom.by_key[idempotency_key(USER, RECORDING, 1)] == row.loom_video_id
    assert row.state.loom_generation == 1


def test_a_video_that_fails_loom_processing_fails_the_row(rig: Rig) -> None:
    rig.loom.fail_processing = "unsupported codec"
    row_id = rig.queue()
    done, _ = rig.run_until_done(row_id)
    assert done.status == Status.FAILED
    assert rig.row(row_id).error_message == (
        "Loom could not process the video (unsupported codec): retry to upload it again"
    )


def test_a_retried_row_remakes_the_video_loom_failed(rig: Rig) -> None:
    rig.loom.fail_processing = "unsupported codec"
    row_id = rig.queue()
    rig.run_until_done(row_id)
    failed_video = rig.row(row_id).loom_video_id
    rig.loom.fail_processing = None
    rig.row(row_id).status = Status.PENDING  # the user's retry
    done, _ = rig.run_until_done(row_id)
    assert done.status == Status.COMPLETED and rig.row(row_id).loom_video_id != failed_video


def test_a_cancel_mid_upload_stops_it_and_deletes_the_unfinished_video(rig: Rig) -> None:
    row_id = rig.queue(size=4096)
    rig.loom.before_upload = lambda: rig.rows.cancel(row_id)
    assert rig.run(row_id) == Done(Status.CANCELLED)
    assert rig.loom.deleted and rig.loom.videos == {}


def test_a_cancelled_row_is_left_cancelled_and_its_unfinished_video_deleted(rig: Rig) -> None:
    rig.loom.processing_polls = 5
    row_id = rig.queue()
    rig.run(row_id)
    rig.rows.cancel(row_id)
    assert rig.run(row_id) == Done(Status.CANCELLED)
    assert rig.loom.deleted == [rig.row(row_id).loom_video_id]


def test_a_lost_lease_stops_the_upload_and_the_next_run_counts_it(rig: Rig) -> None:
    row_id = rig.queue(size=4096)
    sent: list[int] = []
    control = RunControl(lease_lost=lambda: bool(sent), on_progress=lambda d, t: sent.append(d))
    assert rig.run(row_id, control) == Done("stopped")
    assert rig.row(row_id).status == Status.PROCESSING and rig.row(row_id).state.open_run
    done, _ = rig.run_until_done(row_id)
    row = rig.row(row_id)
    assert done.status == Status.COMPLETED and row.attempts == 1
    assert rig.loom.videos[row.loom_video_id].received == 4096  # resumed, not re-sent
    assert rig.loom.count("create_video") == 1


def test_a_worker_shutting_down_hands_the_row_back(rig: Rig) -> None:
    row_id = rig.queue(size=4096)
    sent: list[int] = []
    control = RunControl(shutting_down=lambda: bool(sent), on_progress=lambda d, t: sent.append(d))
    assert rig.run(row_id, control) == Wait(0.0, HANDED_BACK)
    assert rig.row(row_id).wait_reason == HANDED_BACK
    assert rig.row(row_id).state.open_run is False  # handed back, not died: not counted


def test_runs_that_die_fail_the_row_at_the_attempt_limit(rig: Rig) -> None:
    row_id = rig.queue()
    rig.rows.records[row_id].status = Status.PROCESSING
    rig.rows.records[row_id].state = TransferState(open_run=True)
    for attempts in (1, 2, 3):  # each run's lease lost mid-upload: it ends without a word
        assert rig.run(row_id, RunControl(lease_lost=lambda: True)) == Done("stopped")
        assert rig.row(row_id).attempts == attempts
    assert rig.run(row_id) == Done(Status.FAILED)
    assert "stopped unexpectedly 4 times" in rig.row(row_id).error_message


def test_a_run_stopped_by_an_outage_is_not_counted(rig: Rig) -> None:
    row_id = rig.queue()
    rig.rows.records[row_id].status = Status.PROCESSING
    rig.rows.records[row_id].state = TransferState(open_run=True)
    step = rig.run(row_id, RunControl(previous_run_excused=lambda: True))
    assert step == Done(Status.COMPLETED, rig.row(row_id).loom_video_id)
    assert rig.row(row_id).attempts == 0 and rig.row(row_id).state.outage_runs == 1


def test_transient_faults_are_retried_then_fail_the_row(rig: Rig) -> None:
    row_id = rig.queue()
    fault = TemporaryFault("Fathom", "Fathom answered 503: it may be restarting", status=503)
    rig.fathom.fail_next("request_download", *[fault] * 10)
    done, waits = rig.run_until_done(row_id)
    assert [w.reason.rsplit("(", 1)[1] for w in waits] == [
        "attempt 2 of 4)",
        "attempt 3 of 4)",
        "attempt 4 of 4)",
    ]
    assert done.status == Status.FAILED
    assert rig.row(row_id).error_message == (
        "Fathom answered 503: it may be restarting (gave up after 4 attempts): retry later"
    )


def test_a_transient_fault_then_success_completes_with_the_attempt_counted(rig: Rig) -> None:
    row_id = rig.queue()
    rig.loom.fail_next("create_video", TemporaryFault("Loom", "Loom answered 502", status=502))
    done, waits = rig.run_until_done(row_id)
    assert done.status == Status.COMPLETED and len(waits) == 1
    assert rig.row(row_id).attempts == 1


def test_a_rate_limit_is_waited_out_uncounted(rig: Rig) -> None:
    row_id = rig.queue()
    limited = RateLimited("Fathom", "Fathom's rate limit: waiting", status=429, retry_after=7)
    rig.fathom.fail_next("request_download", limited, limited)
    done, waits = rig.run_until_done(row_id)
    assert [w.seconds for w in waits] == [7, 7] and done.status == Status.COMPLETED
    assert rig.row(row_id).attempts == 0


def test_an_unforeseen_exception_is_counted_with_a_readable_reason(rig: Rig) -> None:
    rig.loom.stop_after_bytes = 512  # OSError from inside the upload
    row_id = rig.queue(size=2048)
    done, waits = rig.run_until_done(row_id)
    assert done.status == Status.COMPLETED
    assert waits[0].reason.startswith("Unexpected error in the transfer (OSError; details in")
    assert rig.loom.videos[rig.row(row_id).loom_video_id].received == 2048


@pytest.mark.parametrize(
    ("meeting_id", "message"),
    [
        ("²", "This row's meeting id"),
        ("\uff11\uff10\uff10\uff15", "This row's meeting id"),  # fullwidth 1005
    ],
)
def test_a_bad_meeting_id_fails_the_row_at_once(rig: Rig, meeting_id: str, message: str) -> None:
    row_id = rig.queue(meeting_id)
    assert rig.run(row_id) == Done(Status.FAILED)
    assert rig.row(row_id).error_message.startswith(message)
    assert rig.fathom.calls == []


def test_missing_damaged_and_refused_keys_fail_the_row_at_once(rig: Rig) -> None:
    missing = rig.queue()
    del rig.keys.keys[USER, "Loom"]
    assert rig.run(missing) == Done(Status.FAILED)
    assert rig.row(missing).error_message == (
        "No Loom API key is stored: add your Loom key, then retry"
    )
    rig.keys.give(USER)
    rig.keys.damaged.add((USER, "Fathom"))
    damaged = rig.rows.add(USER, str(RECORDING))
    rig.run(damaged)
    assert rig.row(damaged).error_message.startswith("Your stored Fathom key cannot be decrypted")
    rig.keys.damaged.clear()
    rig.keys.give(USER, fathom="revoked")
    refused = rig.rows.add(USER, str(RECORDING))
    rig.run(refused)
    assert rig.row(refused).error_message == "Fathom refused the API key (401): store a new one"


def test_a_row_deleted_under_the_run_ends_it_as_gone(rig: Rig) -> None:
    assert rig.run("no-such-row") == Done("gone")
    row_id = rig.queue(size=4096)

    def delete(done: int, total: int) -> None:
        rig.rows.records.pop(row_id, None)

    assert rig.run(row_id, RunControl(on_progress=delete)) == Done("gone")


def test_a_refused_write_fails_the_row_naming_the_collection(rig: Rig) -> None:
    row_id = rig.queue()
    refused = PocketBaseRequestError(400, "transfer_state: must be no more than 2000 bytes")
    rig.rows.fail_next("save", None, refused)  # the start goes through; the next write not
    assert rig.run(row_id) == Done(Status.FAILED)
    assert rig.row(row_id).error_message == (
        "PocketBase refused to save the transfer's state (PocketBase refused the request (400):"
        " transfer_state: must be no more than 2000 bytes): ask the operator to check the queue"
        " collection"
    )

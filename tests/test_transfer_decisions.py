"""The transfer's rules (`fathom2loom.transfer.rules`), each a pure function: a row and what a
server said in, an action and the row's changes out. No server, no clock: microseconds each."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fathom2loom.pocketbase.dates import pb_date
from fathom2loom.providers.fathom_models import DownloadFile, RecordingDownload
from fathom2loom.providers.loom import LoomVideo
from fathom2loom.queue_rows import QueueRow, Status, TransferState
from fathom2loom.settings import Settings
from fathom2loom.transfer import rules
from fathom2loom.transfer.steps import RowFailed, Wait
from tests.conftest import make_settings

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return make_settings(
        "http://127.0.0.1:9",
        "redis://127.0.0.1:9/0",
        transfer_max_download_requests=3,
        transfer_max_video_generations=3,
        transfer_max_attempts=4,
        transfer_render_timeout_seconds=3600,
        fathom_poll_initial_seconds=2,
        fathom_poll_max_seconds=30,
        loom_poll_initial_seconds=1,
        loom_poll_max_seconds=10,
        transfer_retry_base_seconds=4,
        transfer_retry_max_seconds=60,
    )


def row(**fields: Any) -> QueueRow:
    state = fields.pop("state", TransferState())
    base: dict[str, Any] = {"id": "r1", "user_id": "u1", "meeting_id": "42"}
    return QueueRow(**(base | {"status": Status.PROCESSING} | fields), state=state)


def download(status: str = "completed", size: int = 500, **extra: Any) -> RecordingDownload:
    file = None
    if status == "completed":
        file = DownloadFile(
            url="https://files.test/d",
            content_type="video/mp4",
            file_size_bytes=size,
            expires_at=NOW + timedelta(hours=1),
        )
    return RecordingDownload(
        download_id=extra.pop("download_id", "d1"),
        recording_id=42,
        status=status,  # type: ignore[arg-type]
        video=file,
        **extra,
    )


def video(status: str = "awaiting_upload", **extra: Any) -> LoomVideo:
    if status == "ready":
        extra.setdefault("share_url", "https://loom.test/share/v1")
    return LoomVideo(
        id="v1",
        status=status,  # type: ignore[arg-type]
        size_bytes=500,
        upload_endpoint="/tus",
        **extra,
    )


# -- Fathom's download ---------------------------------------------------------------------------


def test_a_row_without_a_download_asks_for_one(settings: Settings) -> None:
    assert rules.kept_download(row(), None, settings, NOW) == rules.AskForDownload("")


def test_a_ready_download_is_used_and_its_size_kept(settings: Settings) -> None:
    decision = rules.kept_download(row(fathom_download_id="d1"), download(), settings, NOW)
    assert isinstance(decision, rules.Decision)
    assert isinstance(decision.action, rules.UseFile)
    assert decision.changes == {"bytes_total": 500}
    same_size = rules.kept_download(
        row(fathom_download_id="d1", bytes_total=500), download(), settings, NOW
    )
    assert isinstance(same_size, rules.Decision) and same_size.changes == {}


@pytest.mark.parametrize(
    ("seen", "why"),
    [
        (None, "Fathom no longer knew the download"),
        (download("expired"), "Fathom's download was expired without a file"),
        (
            download("failed", failure_reason="media_unavailable"),
            "Fathom could not prepare the video (media unavailable)",
        ),
    ],
)
def test_a_lost_download_is_asked_for_again_saying_why(
    settings: Settings, seen: RecordingDownload | None, why: str
) -> None:
    decision = rules.kept_download(row(fathom_download_id="d1"), seen, settings, NOW)
    assert decision == rules.AskForDownload(why)


def test_downloads_are_asked_for_a_bounded_number_of_times(settings: Settings) -> None:
    spent = row(fathom_download_id="d1", state=TransferState(download_requests=3))
    with pytest.raises(RowFailed, match=r"no longer knew the download \(3 downloads requested\)"):
        rules.kept_download(spent, None, settings, NOW)
    earlier = TransferState(download_requests=3, last_gone="Fathom could not prepare the video")
    with pytest.raises(RowFailed, match=r"^Fathom could not prepare the video"):
        rules.kept_download(row(state=earlier), None, settings, NOW)


def test_a_new_download_is_kept_and_its_render_counted(settings: Settings) -> None:
    asked = rules.AskForDownload("Fathom no longer knew the download")
    decision = rules.new_download(row(), asked, download("processing"), settings, NOW)
    assert isinstance(decision.action, Wait) and decision.action.reason == rules.RENDERING
    assert 1 <= decision.action.seconds <= 2  # the first poll: half to all of the initial wait
    state = decision.changes["state"]
    assert decision.changes["fathom_download_id"] == "d1"
    assert (state.download_requests, state.render_polls) == (1, 1)
    assert state.render_started_at == pb_date(NOW)
    assert state.last_gone == asked.why


def test_a_new_download_that_is_ready_at_once_is_used(settings: Settings) -> None:
    decision = rules.new_download(row(), rules.AskForDownload(), download(), settings, NOW)
    assert isinstance(decision.action, rules.UseFile)
    assert decision.changes["fathom_download_id"] == "d1"
    assert decision.changes["state"].download_requests == 1


def test_a_new_download_that_failed_is_dropped_and_asked_for_later(settings: Settings) -> None:
    failed = download("failed", failure_reason="too_long")
    decision = rules.new_download(row(), rules.AskForDownload(), failed, settings, NOW)
    assert decision.changes["fathom_download_id"] == ""
    assert isinstance(decision.action, Wait)
    assert decision.action.reason == "Fathom could not prepare the video (too long): asking again"


def test_render_polls_back_off_up_to_the_cap(settings: Settings) -> None:
    state = TransferState(render_polls=10, render_started_at=pb_date(NOW))
    decision = rules.kept_download(
        row(fathom_download_id="d1", state=state), download("processing"), settings, NOW
    )
    assert isinstance(decision, rules.Decision) and isinstance(decision.action, Wait)
    assert 15 <= decision.action.seconds <= 30
    assert decision.changes["state"].render_polls == 11
    assert state.render_polls == 10  # the row's own state is left for the caller to save


def test_a_render_that_takes_too_long_fails_the_row(settings: Settings) -> None:
    started = TransferState(render_started_at=pb_date(NOW - timedelta(hours=2)))
    with pytest.raises(RowFailed, match=r"more than 1\.0 h to prepare the video"):
        rules.kept_download(
            row(fathom_download_id="d1", state=started), download("processing"), settings, NOW
        )


# -- Loom's video --------------------------------------------------------------------------------


def test_the_idempotency_key_is_the_users_recording_and_generation() -> None:
    assert rules.idempotency_key("u1", 42, 0) == "fathom2loom-u1-42"
    assert rules.idempotency_key("u1", 42, 2) == "fathom2loom-u1-42-g2"


def test_a_row_without_a_video_makes_one(settings: Settings) -> None:
    assert rules.kept_video(row(), None, settings) == rules.Decision(rules.MakeVideo())


def test_a_lost_video_moves_the_key_on(settings: Settings) -> None:
    decision = rules.kept_video(row(loom_video_id="v1"), None, settings)
    assert decision.action == rules.MakeVideo()
    state = decision.changes["state"]
    assert decision.changes["loom_video_id"] == ""
    assert (state.loom_generation, state.last_gone) == (1, "Loom no longer had the video")


def test_a_failed_video_is_remade_only_when_the_row_was_retried(settings: Settings) -> None:
    retried = row(loom_video_id="v1", state=TransferState(check_video=True))
    remade = rules.kept_video(retried, video("failed"), settings)
    assert remade.action == rules.MakeVideo()
    assert remade.changes["state"].last_gone == "Loom could not process the earlier upload"
    kept = rules.kept_video(row(loom_video_id="v1"), video("failed"), settings)
    assert kept == rules.Decision(rules.UseVideo(video("failed")))


def test_a_checked_video_is_used_and_the_check_cleared(settings: Settings) -> None:
    checked = row(loom_video_id="v1", state=TransferState(check_video=True))
    decision = rules.kept_video(checked, video("uploading"), settings)
    assert decision.action == rules.UseVideo(video("uploading"))
    assert decision.changes["state"].check_video is False


def test_video_generations_are_bounded(settings: Settings) -> None:
    last = row(loom_video_id="v1", state=TransferState(loom_generation=2))
    with pytest.raises(RowFailed, match="Loom no longer had the video, 3 times: try again later"):
        rules.kept_video(last, None, settings)


def test_a_created_video_is_kept_unless_loom_failed_it_before(settings: Settings) -> None:
    kept = rules.created_video(row(), video(), settings)
    assert kept == rules.Decision(rules.UseVideo(video()), {"loom_video_id": "v1"})
    again = rules.created_video(row(), video("failed"), settings)
    assert again.action == rules.MakeVideo()
    assert again.changes["state"].loom_generation == 1


def test_after_the_upload_the_row_completes_fails_or_waits(settings: Settings) -> None:
    ready = video("ready")
    assert rules.video_outcome(row(), ready, settings) == rules.Decision(rules.Complete(ready))
    with pytest.raises(RowFailed, match=r"Loom could not process the video \(codec\)"):
        rules.video_outcome(row(), video("failed", failure_reason="codec"), settings)
    waiting = rules.video_outcome(row(), video("processing"), settings)
    assert isinstance(waiting.action, Wait) and waiting.action.reason == rules.LOOM_PROCESSING
    assert waiting.changes["state"].loom_polls == 1


# -- a run's beginning and end -------------------------------------------------------------------


def test_a_pending_row_starts_afresh_keeping_its_video_key() -> None:
    earlier = TransferState(loom_generation=2, download_requests=3, render_polls=9)
    changes = rules.start(row(status=Status.PENDING, loom_video_id="v1", state=earlier), NOW)
    assert changes["status"] == Status.PROCESSING and changes["position"] == 0
    assert changes["started_at"] == pb_date(NOW) and changes["attempts"] == 0
    assert changes["state"] == TransferState(open_run=True, loom_generation=2, check_video=True)


def test_a_run_that_died_is_counted_and_ends_the_row_at_the_limit(settings: Settings) -> None:
    died = row(attempts=1, state=TransferState(open_run=True))
    assert rules.resume(died, False, settings)["attempts"] == 2
    with pytest.raises(RowFailed, match="stopped unexpectedly 4 times"):
        rules.resume(replace(died, attempts=3), False, settings)


def test_a_run_stopped_by_an_outage_is_excused_a_bounded_number_of_times(
    settings: Settings,
) -> None:
    stopped = row(attempts=1, state=TransferState(open_run=True))
    excused = rules.resume(stopped, True, settings)
    assert excused["attempts"] == 1 and excused["state"].outage_runs == 1
    many = TransferState(open_run=True, outage_runs=rules.MAX_EXCUSED_OUTAGES)
    assert rules.resume(row(attempts=1, state=many), True, settings)["attempts"] == 2


def test_a_deferred_row_resumes_uncounted(settings: Settings) -> None:
    changes = rules.resume(row(attempts=2, wait_reason="Loom is processing"), False, settings)
    assert changes["attempts"] == 2 and changes["wait_reason"] == ""
    assert changes["state"].open_run is True


def test_transient_faults_back_off_then_fail_the_row(settings: Settings) -> None:
    first = rules.retry_later(row(), "Fathom answered 503", None, settings)
    assert first.changes == {"attempts": 1}
    assert first.action.reason == "Fathom answered 503: trying again (attempt 2 of 4)"
    assert 2 <= first.action.seconds <= 4
    told = rules.retry_later(row(), "busy", 500.0, settings)
    assert told.action.seconds == 60  # a server's Retry-After, capped
    with pytest.raises(RowFailed, match=r"^busy \(gave up after 4 attempts\): retry later$"):
        rules.retry_later(row(attempts=3), "busy", None, settings)


def test_the_final_writes_close_the_run() -> None:
    open_row = row(bytes_total=0, state=TransferState(open_run=True))
    done = rules.completion(open_row, video("ready"), NOW)
    assert done["status"] == Status.COMPLETED and done["loom_url"] == "https://loom.test/share/v1"
    assert done["bytes_done"] == done["bytes_total"] == 500
    failed = rules.failure(open_row, "x" * 3000, NOW)
    assert failed["status"] == Status.FAILED and len(failed["error_message"]) == 2000
    deferred = rules.deferral(open_row, Wait(90, "Loom is processing the video"), NOW)
    assert deferred["next_attempt_at"] == pb_date(NOW + timedelta(seconds=90))
    for changes in (done, failed, deferred):
        assert changes["state"].open_run is False
    assert open_row.state.open_run is True

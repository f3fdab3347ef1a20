"""The Fathom client against the Fathom stand-in, over real HTTP, faults included."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from fathom2loom.errors import (
    DownloadGone,
    KeyRejected,
    LinkExpired,
    NotAllowed,
    NothingToDownload,
    ProtocolError,
    ProviderError,
    RateLimited,
    RecordingNotFound,
    TemporaryFault,
)
from fathom2loom.providers.fathom import FathomClient
from fathom2loom.providers.wait_hint import LONGEST_WAIT
from tests.conftest import FATHOM_KEY

MIB = 1024 * 1024


def sha256(chunks: Any) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture
def fathom(providers: Any) -> FathomClient:
    client: FathomClient = providers.fathom(FATHOM_KEY)
    return client


def assert_clean(error: BaseException, *secrets: str) -> None:
    text = f"{error} {getattr(error, 'user_message', '')}"
    for secret in (FATHOM_KEY, *secrets):
        assert secret not in text


def test_meetings_follow_next_cursor_to_the_end(fathom: FathomClient, fathom_standin: Any) -> None:
    for n in range(25):
        fathom_standin.add_meeting(FATHOM_KEY, 5000 + n)
    fathom_standin.add_meeting("someone-else", 9999)
    meetings = list(fathom.meetings())
    assert sorted(m.recording_id for m in meetings) == list(range(5000, 5025))
    assert fathom_standin.stats()["calls"]["GET /meetings"] == 3
    assert all(m.duration_seconds >= 0 for m in meetings)


def test_find_meeting_stops_as_soon_as_found(fathom: FathomClient, fathom_standin: Any) -> None:
    for n in range(30):
        fathom_standin.add_meeting(FATHOM_KEY, 100 + n)
    newest = max(m.recording_id for m in fathom.meetings())
    before = fathom_standin.stats()["calls"]["GET /meetings"]
    assert fathom.find_meeting(newest).recording_id == newest
    assert fathom_standin.stats()["calls"]["GET /meetings"] == before + 1
    with pytest.raises(RecordingNotFound, match="check the meeting id"):
        fathom.find_meeting(424242)


def test_transcript_and_summary(fathom: FathomClient, fathom_standin: Any) -> None:
    fathom_standin.add_meeting(FATHOM_KEY, 77)
    transcript = fathom.transcript(77)
    assert transcript and {"speaker", "text", "timestamp"} <= set(transcript[0])
    assert "markdown_formatted" in fathom.summary(77)


def test_the_whole_download_flow(fathom: FathomClient, fathom_standin: Any) -> None:
    # Given a 3 MiB recording that takes a moment to render
    fathom_standin.add_meeting(FATHOM_KEY, 1, size=3 * MIB)
    fathom_standin.set_fault("recording:1", render_seconds=0.3)
    # When we request it, wait for the render and stream the file
    download, file = fathom.wait_for_file(1, timeout=20)
    assert download.status == "completed"
    assert file.file_size_bytes == 3 * MIB
    # Expect the exact bytes, and no API key sent to the storage host
    assert sha256(fathom.stream(file)) == fathom_standin.expected_sha256(1)
    assert fathom_standin.stats()["api_key_sent_to_storage"] == 0
    assert "url" not in repr(file) and file.url not in str(file)


def test_polling_does_not_wait_inside_the_call(fathom: FathomClient, fathom_standin: Any) -> None:
    fathom_standin.add_meeting(FATHOM_KEY, 2)
    fathom_standin.set_fault("recording:2", render_seconds=60)
    started = time.monotonic()
    download = fathom.request_download(2)
    assert download.status == "processing" and download.download_id.startswith("dl_")
    # Polling the same download says where it stands, at once, without another render
    again = fathom.download_status(2, download.download_id)
    assert again.status == "processing" and again.download_id == download.download_id
    assert fathom_standin.stats()["downloads_requested"] == 1
    assert time.monotonic() - started < 2


def test_a_download_fathom_no_longer_knows_is_gone_not_missing(
    fathom: FathomClient, fathom_standin: Any
) -> None:
    # Given a download made before Fathom's side restarted (or by another key)
    fathom_standin.add_meeting(FATHOM_KEY, 9)
    download = fathom.request_download(9)
    fathom_standin.restart()
    # Expect "gone: ask again", never "no such recording"
    with pytest.raises(DownloadGone, match="asking for a new one") as gone:
        fathom.download_status(9, download.download_id)
    assert gone.value.retryable and gone.value.status == 404
    assert fathom.request_download(9).status == "processing"


def test_a_cut_off_before_the_first_read_completes_resumes_from_that_byte(
    fathom: FathomClient, fathom_standin: Any
) -> None:
    fathom_standin.add_meeting(FATHOM_KEY, 10, size=2 * MIB)
    _, file = fathom.wait_for_file(10, timeout=20)
    fathom_standin.reset()
    fathom_standin.set_fault("recording:10", cut_after_bytes=300_000, times=1)
    assert sha256(fathom.stream(file)) == fathom_standin.expected_sha256(10)
    # Nothing that arrived before the cut is fetched again
    assert fathom_standin.stats()["bytes_served"] == 2 * MIB


def test_resume_after_cut_off_gives_identical_bytes(
    fathom: FathomClient, fathom_standin: Any
) -> None:
    fathom_standin.add_meeting(FATHOM_KEY, 3, size=2 * MIB + 123)
    fathom_standin.set_fault("recording:3", cut_after_bytes=700_000, times=2)
    _, file = fathom.wait_for_file(3, timeout=20)
    assert sha256(fathom.stream(file)) == fathom_standin.expected_sha256(3)
    assert fathom_standin.stats()["bytes_served"] >= 2 * MIB + 123


def test_stream_from_an_offset(fathom: FathomClient, fathom_standin: Any) -> None:
    fathom_standin.add_meeting(FATHOM_KEY, 4, size=MIB)
    _, file = fathom.wait_for_file(4, timeout=20)
    whole = b"".join(fathom.stream(file))
    assert b"".join(fathom.stream(file, start=300_001)) == whole[300_001:]


def test_expired_download_and_expired_link(fathom: FathomClient, fathom_standin: Any) -> None:
    fathom_standin.add_meeting(FATHOM_KEY, 5, size=100_000)
    fathom_standin.set_fault("recording:5", expired_downloads=1, render_seconds=0.1)
    _, file = fathom.wait_for_file(5, timeout=20)
    assert fathom_standin.stats()["downloads_requested"] == 2
    fathom_standin.set_fault("recording:5", expired_links=1)
    with pytest.raises(LinkExpired) as expired:
        list(fathom.stream(file))
    assert_clean(expired.value, file.url)
    # Asking again gives a working link
    _, fresh = fathom.wait_for_file(5, timeout=20)
    assert sha256(fathom.stream(fresh)) == fathom_standin.expected_sha256(5)


def test_failed_render_reports_its_reason(fathom: FathomClient, fathom_standin: Any) -> None:
    fathom_standin.add_meeting(FATHOM_KEY, 6)
    fathom_standin.set_fault("recording:6", render_failure="generation_timeout")
    download = fathom.request_download(6)
    failed = fathom.download_status(6, download.download_id)
    assert failed.status == "failed" and failed.failure_reason == "generation_timeout"
    with pytest.raises(DownloadGone, match="failed"):
        fathom.wait_for_file(6, timeout=20)


@pytest.mark.parametrize(
    ("target", "status", "error", "words"),
    [
        ("key", 401, KeyRejected, "update your Fathom key"),
        ("recording", 403, NotAllowed, "share it with you"),
        ("recording", 404, RecordingNotFound, "check the meeting id"),
        ("recording", 422, NothingToDownload, "no downloadable media"),
    ],
)
def test_permanent_errors_are_typed_and_explained(
    fathom: FathomClient, fathom_standin: Any, target: str, status: int, error: type, words: str
) -> None:
    fathom_standin.add_meeting(FATHOM_KEY, 7)
    fathom_standin.set_fault(
        f"key:{FATHOM_KEY}" if target == "key" else "recording:7",
        status=status,
        endpoint="POST /recordings/{id}/download",
    )
    with pytest.raises(error, match=words) as caught:
        fathom.request_download(7)
    assert isinstance(caught.value, ProviderError) and caught.value.status == status
    assert_clean(caught.value)
    # Permanent errors are not retried
    assert fathom_standin.stats()["downloads_requested"] <= 1


def test_unknown_key_is_rejected(providers: Any, fathom_standin: Any) -> None:
    with pytest.raises(KeyRejected) as caught:
        list(providers.fathom("not-a-real-key-abc").meetings())
    assert "not-a-real-key-abc" not in str(caught.value)


def test_short_429_and_5xx_bursts_are_retried(fathom: FathomClient, fathom_standin: Any) -> None:
    fathom_standin.add_meeting(FATHOM_KEY, 8)
    fathom_standin.set_fault(f"key:{FATHOM_KEY}", status=429, times=1, retry_after=1)
    assert len(list(fathom.meetings())) == 1
    fathom_standin.set_fault(f"key:{FATHOM_KEY}", status=503, times=2)
    assert len(list(fathom.meetings())) == 1


def test_long_rate_limit_waits_are_handed_back_and_shared(
    fathom: FathomClient, providers: Any, fathom_standin: Any
) -> None:
    fathom_standin.set_fault(f"key:{FATHOM_KEY}", status=429, retry_after=30, times=1)
    with pytest.raises(RateLimited) as limited:
        list(fathom.meetings())
    assert limited.value.retry_after == pytest.approx(30, abs=1)
    # Another client with the same key (as in another worker) waits too, without calling Fathom
    calls = sum(fathom_standin.stats()["calls"].values())
    with pytest.raises(RateLimited):
        list(providers.fathom(FATHOM_KEY).meetings())
    assert sum(fathom_standin.stats()["calls"].values()) == calls


@pytest.mark.parametrize(
    "header", ["inf", "nan", "1e9", "-5", "٣", "²", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"]
)
def test_a_wait_hint_we_cannot_read_or_already_past_is_no_hint(
    fathom: FathomClient, fathom_standin: Any, header: str
) -> None:
    """`float()` takes `inf`, `1e9` and `٣`: such a 429 is backed off and tried again here, as
    one without a hint, rather than overflow or freeze the key."""
    fathom_standin.add_meeting(FATHOM_KEY, 8)
    on_the_wire = header.encode().decode("latin-1")  # the stand-in sends latin-1: UTF-8 bytes
    fathom_standin.set_fault(
        f"key:{FATHOM_KEY}", status=429, times=1, retry_after_header=on_the_wire
    )
    assert [m.recording_id for m in fathom.meetings()] == [8]
    assert fathom_standin.stats()["calls"]["GET /meetings"] == 2


@pytest.mark.parametrize(
    ("header", "told"),
    [("99999999999", LONGEST_WAIT), ("86400", LONGEST_WAIT), ("45", 45.0), ("45.5", 45.5)],
)
def test_a_long_wait_hint_is_kept_within_bounds_and_shared(
    fathom: FathomClient, providers: Any, fathom_standin: Any, header: str, told: float
) -> None:
    fathom_standin.set_fault(f"key:{FATHOM_KEY}", status=429, times=1, retry_after_header=header)
    with pytest.raises(RateLimited) as limited:
        list(fathom.meetings())
    assert limited.value.retry_after == told
    with pytest.raises(RateLimited) as shared:  # another worker's client, same key
        list(providers.fathom(FATHOM_KEY).meetings())
    assert shared.value.retry_after is not None
    assert told - 5 < shared.value.retry_after <= told


def test_a_wait_hint_as_an_http_date(fathom: FathomClient, fathom_standin: Any) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=40), usegmt=True)
    fathom_standin.set_fault(f"key:{FATHOM_KEY}", status=429, times=1, retry_after_header=later)
    with pytest.raises(RateLimited) as limited:
        list(fathom.meetings())
    assert limited.value.retry_after is not None and 30 < limited.value.retry_after <= 40


def test_a_lasting_5xx_becomes_a_temporary_fault(fathom: FathomClient, fathom_standin: Any) -> None:
    fathom_standin.set_fault(f"key:{FATHOM_KEY}", status=500)
    with pytest.raises(TemporaryFault, match="temporary fault"):
        list(fathom.meetings())
    assert fathom_standin.stats()["calls"]["GET /meetings"] == 4


def test_a_webhook_fathom_made_but_answered_badly_is_not_left_behind(
    fathom: FathomClient, fathom_standin: Any
) -> None:
    # Given Fathom making the webhook but answering without its secret (a proxy, a bug)
    fathom_standin.set_fault("*", endpoint="POST /webhooks", garble="drop:secret")
    # Expect a ProtocolError, and the webhook deleted again rather than left sending deliveries
    with pytest.raises(ProtocolError):
        fathom.create_webhook("http://127.0.0.1:9/fathom/abc")
    assert fathom_standin.webhooks.registrations(FATHOM_KEY) == []
    # And with a good answer, one webhook, its secret kept out of its repr
    fathom_standin.clear_faults()
    made = fathom.create_webhook("http://127.0.0.1:9/fathom/abc")
    assert [r.id for r in fathom_standin.webhooks.registrations(FATHOM_KEY)] == [made.id]
    assert "whsec_" not in repr(made)

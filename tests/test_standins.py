"""The Fathom and Loom stand-ins, driven over real loopback HTTP the way our clients will be."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.standins import FathomStandin, LoomStandin, iter_content

KEY = "fathom-key-1"
LOOM_KEY = "loom-key-1"
MEETING_FIELDS = {
    "title",
    "meeting_title",
    "meeting_type",
    "recording_id",
    "url",
    "share_url",
    "created_at",
    "scheduled_start_time",
    "scheduled_end_time",
    "recording_start_time",
    "recording_end_time",
    "calendar_invitees_domains_type",
    "shared_with",
    "recorded_by",
    "transcript_language",
    "calendar_invitees",
}


@pytest.fixture
def fathom() -> Iterator[FathomStandin]:
    server = FathomStandin(page_size=3).start()
    server.add_key(KEY)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def loom(tmp_path: Path) -> Iterator[LoomStandin]:
    server = LoomStandin(storage_dir=tmp_path / "loom").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(fathom: FathomStandin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fathom.url, headers={"X-Api-Key": KEY}, timeout=10) as client:
        yield client


@pytest.fixture
def loom_api(loom: LoomStandin) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {LOOM_KEY}"}
    with httpx.Client(base_url=loom.url, headers=headers, timeout=10) as client:
        yield client


def completed_download(api: httpx.Client, recording_id: int) -> dict[str, Any]:
    started = api.post(f"/recordings/{recording_id}/download")
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "processing"
    download_id = started.json()["download_id"]
    polled = api.get(f"/recordings/{recording_id}/downloads/{download_id}")
    assert polled.status_code == 200
    body: dict[str, Any] = polled.json()
    assert body["status"] == "completed", body
    return body


def test_meetings_are_paged_newest_first_until_next_cursor_is_null(
    fathom: FathomStandin, api: httpx.Client
) -> None:
    # Given seven meetings for our key and one for somebody else's
    for recording_id in range(1001, 1008):
        fathom.add_meeting(KEY, recording_id)
    fathom.add_meeting("other-key", 9999)
    # When we follow next_cursor
    seen, cursor, pages = [], None, 0
    while True:
        params = {"include_transcript": "true", **({"cursor": cursor} if cursor else {})}
        page = api.get("/meetings", params=params).json()
        assert set(page) == {"limit", "next_cursor", "items"} and page["limit"] == 3
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Expect every meeting once, newest first, complete, with the transcript asked for
    assert pages == 3
    assert [m["recording_id"] for m in seen] == list(range(1007, 1000, -1))
    assert all(set(m) >= MEETING_FIELDS and m["transcript"] for m in seen)
    assert "default_summary" not in seen[0]
    assert seen[0]["created_at"].endswith("Z")


def test_download_then_range_request_returns_the_right_slice(
    fathom: FathomStandin, api: httpx.Client
) -> None:
    fathom.add_meeting(KEY, 7, size=3_000_000)
    video = completed_download(api, 7)["video"]
    assert video["content_type"] == "video/mp4" and video["file_size_bytes"] == 3_000_000

    with httpx.Client(timeout=10) as storage:
        part = storage.get(video["url"], headers={"Range": "bytes=1048000-1049999"})
        full = storage.get(video["url"])
        head = storage.head(video["url"])

    assert part.status_code == 206
    assert part.headers["Content-Range"] == "bytes 1048000-1049999/3000000"
    assert part.content == b"".join(iter_content(7, 3_000_000, 1_048_000, 1_050_000))
    assert full.status_code == 200
    assert hashlib.sha256(full.content).hexdigest() == fathom.expected_sha256(7)
    assert head.headers["Content-Length"] == "3000000"
    assert fathom.stats()["api_key_sent_to_storage"] == 0


def test_status_faults_answer_422_and_429_with_rate_limit_headers(
    fathom: FathomStandin, api: httpx.Client
) -> None:
    fathom.add_meeting(KEY, 7)
    fathom.set_fault("recording:7", status=422, endpoint="POST /recordings/{id}/download")
    fathom.set_fault(f"key:{KEY}", status=429, times=1, retry_after=3)

    limited = api.get("/meetings")
    no_media = api.post("/recordings/7/download")

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3" and limited.headers["RateLimit-Reset"] == "3"
    assert limited.headers["RateLimit-Remaining"] == "0" and "RateLimit-Limit" in limited.headers
    assert no_media.status_code == 422 and "error" in no_media.json()
    assert api.get("/meetings").status_code == 200  # times=1 used up
    assert api.get("/recordings/7/transcript").status_code == 200  # endpoint-limited
    assert api.get("/meetings", headers={"X-Api-Key": "unknown"}).status_code == 401


def test_enforced_rate_limit_counts_calls_per_key(fathom: FathomStandin) -> None:
    fathom.enforce_rate_limit = 2
    with httpx.Client(base_url=fathom.url, headers={"X-Api-Key": KEY}) as client:
        codes = [client.get("/meetings").status_code for _ in range(3)]
        third = client.get("/meetings")
    assert codes == [200, 200, 429]
    assert int(third.headers["Retry-After"]) >= 1
    assert len(fathom.call_times(KEY)) == 4
    assert fathom.stats()["calls_by_key"] == {KEY: 4}


def test_cut_after_bytes_drops_the_connection_mid_body(
    fathom: FathomStandin, api: httpx.Client
) -> None:
    fathom.add_meeting(KEY, 7, size=500_000)
    url = completed_download(api, 7)["video"]["url"]
    fathom.set_fault("recording:7", cut_after_bytes=100_000, times=1)

    with httpx.Client(timeout=10) as storage:
        with pytest.raises(httpx.RemoteProtocolError):
            storage.get(url)
        resumed = storage.get(url, headers={"Range": "bytes=100000-"})

    assert resumed.status_code == 206 and len(resumed.content) == 400_000
    assert fathom.stats()["bytes_served"] == 500_000


def test_failed_render_and_expired_link(fathom: FathomStandin, api: httpx.Client) -> None:
    fathom.add_meeting(KEY, 7)
    fathom.set_fault("recording:7", render_failure="generation_failed", times=1)
    started = api.post("/recordings/7/download").json()
    failed = api.get(f"/recordings/7/downloads/{started['download_id']}").json()
    assert failed["status"] == "failed" and failed["failure_reason"] == "generation_failed"

    fathom.set_fault("recording:7", expired_links=1)
    url = completed_download(api, 7)["video"]["url"]
    with httpx.Client(timeout=10) as storage:
        expired = storage.get(url)
        assert expired.status_code == 403 and b"Request has expired" in expired.content
        assert storage.get(url).status_code == 200


def tus_headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": "1.0.0", **extra}


def create_video(loom_api: httpx.Client, size: int, key: str = "row-1") -> httpx.Response:
    body = {"title": "Demo", "description": "", "size_bytes": size, "content_type": "video/mp4"}
    return loom_api.post("/v1/videos", json=body, headers={"Idempotency-Key": key})


def test_tus_upload_resumes_after_a_cut_patch(loom: LoomStandin, loom_api: httpx.Client) -> None:
    # Given a video and its tus upload
    data = b"".join(iter_content(42, 1_000_000))
    video = create_video(loom_api, len(data)).json()
    assert video["status"] == "awaiting_upload"
    assert loom_api.options("/tus/").headers["Tus-Version"] == "1.0.0"
    metadata = "video_id " + base64.b64encode(video["id"].encode()).decode()
    created = loom_api.post(
        video["upload_endpoint"],
        headers=tus_headers(**{"Upload-Length": str(len(data)), "Upload-Metadata": metadata}),
    )
    assert created.status_code == 201 and created.headers["Location"].startswith("/tus/")
    upload = created.headers["Location"]
    patch = tus_headers(**{"Content-Type": "application/offset+octet-stream"})

    # When the first PATCH is cut after 300 000 bytes
    loom.set_fault(f"video:{video['id']}", patch_fail_after_bytes=300_000, times=1)
    with pytest.raises(httpx.TransportError):
        loom_api.patch(upload, content=data, headers={**patch, "Upload-Offset": "0"})

    # Expect HEAD to report exactly what was stored, and a chunked PATCH to finish the upload
    offset = int(loom_api.head(upload, headers=tus_headers()).headers["Upload-Offset"])
    assert offset == 300_000
    stale = loom_api.patch(upload, content=b"x", headers={**patch, "Upload-Offset": "0"})
    assert stale.status_code == 409
    wrong_type = loom_api.patch(
        upload, content=b"x", headers={**tus_headers(), "Upload-Offset": "0"}
    )
    assert wrong_type.status_code == 415
    rest = iter([data[offset : offset + 400_000], data[offset + 400_000 :]])
    done = loom_api.patch(upload, content=rest, headers={**patch, "Upload-Offset": str(offset)})
    assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(data))

    ready = loom_api.get(f"/v1/videos/{video['id']}").json()
    assert ready["status"] == "ready"
    assert ready["share_url"] == f"https://www.loom.com/share/{video['id']}"
    assert loom.video_sha256(video["id"]) == hashlib.sha256(data).hexdigest()
    assert loom.stats()["bytes_received"] == len(data)


def test_idempotency_key_creates_one_video(loom: LoomStandin, loom_api: httpx.Client) -> None:
    first, again = create_video(loom_api, 10), create_video(loom_api, 10)
    other = create_video(loom_api, 10, key="row-2")

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    assert loom.stats()["videos_created_by_key"] == {"row-1": 1, "row-2": 1}
    assert loom_api.delete(f"/v1/videos/{first.json()['id']}").status_code == 204
    assert loom_api.get(f"/v1/videos/{first.json()['id']}").status_code == 404
    assert loom_api.get("/v1/videos/x", headers={"Authorization": ""}).status_code == 401


def test_control_endpoints_drive_a_standin_over_http(
    loom: LoomStandin, loom_api: httpx.Client, fathom: FathomStandin
) -> None:
    fault = {"target": "*", "status": 503, "times": 1, "endpoint": "POST /v1/videos"}
    assert loom_api.post("/_standin/faults", json=fault).status_code == 200
    assert loom_api.post("/_standin/faults", json={"target": "nope"}).status_code == 400

    unavailable = create_video(loom_api, 10)
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["code"] == "service_unavailable"
    assert create_video(loom_api, 10).status_code == 201

    stats = loom_api.get("/_standin/stats").json()
    assert stats["calls"] == {"POST /v1/videos": 2} and stats["faults"] == []
    assert loom_api.post("/_standin/reset").status_code == 204
    assert loom_api.get("/_standin/stats").json()["calls"] == {}
    assert len(loom.videos()) == 1  # reset keeps the data

    # The Fathom stand-in answers control calls under its API base URL too
    with httpx.Client(base_url=fathom.url) as client:
        assert client.get("/_standin/stats").json()["bytes_served"] == 0

"""The Loom adapter and its tus uploads against the Loom stand-in, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devkit.standins.content import content_sha256, iter_content
from fathom2loom.errors import (
    KeyRejected,
    ProviderRejected,
    RateLimited,
    TemporaryFault,
    VideoGone,
)
from fathom2loom.providers.loom import LoomClient, LoomVideo
from fathom2loom.providers.tus import UploadStopped, rechunk
from tests.conftest import LOOM_KEY

MIB = 1024 * 1024
SEED = 31337


def source(size: int) -> Any:
    def from_offset(offset: int) -> Iterator[bytes]:
        return iter_content(SEED, size, start=offset)

    return from_offset


@pytest.fixture
def loom(providers: Any) -> LoomClient:
    client: LoomClient = providers.loom(LOOM_KEY)
    return client


def new_video(loom: LoomClient, size: int, key: str = "row-1") -> LoomVideo:
    return loom.create_video(
        title="Weekly sync",
        description="Moved from Fathom",
        size_bytes=size,
        content_type="video/mp4",
        idempotency_key=key,
    )


def test_create_is_idempotent(loom: LoomClient, loom_standin: Any) -> None:
    first = new_video(loom, 1000)
    again = [new_video(loom, 1000) for _ in range(2)]
    assert {v.id for v in again} == {first.id}
    assert loom_standin.stats()["videos_created_by_key"] == {"row-1": 1}
    assert new_video(loom, 1000, key="row-2").id != first.id


def test_upload_then_ready_with_identical_bytes(loom: LoomClient, loom_standin: Any) -> None:
    size = 3 * MIB + 17
    video = new_video(loom, size)
    progress: list[int] = []
    loom.upload(video, source(size), on_progress=progress.append)
    ready = loom.wait_ready(video.id, timeout=20)
    assert ready.status == "ready" and ready.share_url
    assert loom_standin.video_sha256(video.id) == content_sha256(SEED, size)
    assert progress == sorted(progress) and progress[-1] == size


def test_upload_resumes_after_a_failed_patch(loom: LoomClient, loom_standin: Any) -> None:
    size = 2 * MIB
    video = new_video(loom, size)
    loom_standin.set_fault(f"video:{video.id}", patch_fail_after_bytes=100_000, times=2)
    loom.upload(video, source(size))
    assert loom_standin.video_sha256(video.id) == content_sha256(SEED, size)
    # What was stored before each cut is kept, not sent twice
    assert loom_standin.stats()["bytes_received"] == size


def test_a_new_client_continues_where_the_last_one_stopped(
    providers: Any, loom_standin: Any
) -> None:
    size = 2 * MIB
    # Given a first worker that stopped after three chunks
    first = providers.loom(LOOM_KEY)
    video = new_video(first, size, key="row-crash")
    sent: list[int] = []
    with pytest.raises(UploadStopped):
        first.upload(
            video, source(size), on_progress=sent.append, should_stop=lambda: len(sent) >= 3
        )
    # When another worker picks the row up (the same idempotency key finds the same video)
    second = providers.loom(LOOM_KEY)
    again = new_video(second, size, key="row-crash")
    assert again.id == video.id and again.upload_url
    resumed: list[int] = []
    second.upload(again, source(size), on_progress=resumed.append)
    # Expect the bytes whole, and only the missing part sent the second time
    assert loom_standin.video_sha256(video.id) == content_sha256(SEED, size)
    assert loom_standin.stats()["bytes_received"] == size
    assert resumed[0] > sent[-1] and len(resumed) < size // first.chunk_bytes


def test_delete_removes_an_unfinished_video(loom: LoomClient, loom_standin: Any) -> None:
    video = new_video(loom, MIB)
    with pytest.raises(UploadStopped):
        loom.upload(video, source(MIB), should_stop=lambda: True)
    loom.delete_video(video.id)
    loom.delete_video(video.id)  # Already gone is fine
    with pytest.raises(VideoGone) as missing:
        loom.get_video(video.id)
    assert missing.value.status == 404


def test_the_loom_key_goes_only_to_the_loom_origin(providers: Any, loom_standin: Any) -> None:
    # Given a client configured with another name for the same server (another origin than the
    # upload URLs the server hands out, as a bucket or a CDN would be)
    alias = loom_standin.url.replace("127.0.0.1", "localhost")
    client = LoomClient(LOOM_KEY, http=providers.api_http, base_url=alias, chunk_bytes=256 * 1024)
    video = client.create_video(
        title="t", description="d", size_bytes=MIB, content_type="video/mp4", idempotency_key="x"
    )
    # When the bytes go up over tus
    client.upload(video, source(MIB))
    # Expect the API calls to carry the key, and no tus request to the other origin
    stats = loom_standin.stats()
    assert stats["tus_requests_with_key"] == 0 and stats["tus_requests"] > 0
    assert loom_standin.video_sha256(video.id) == content_sha256(SEED, MIB)
    # While the same server, named as configured, gets the key on tus requests too
    same = providers.loom(LOOM_KEY)
    other = new_video(same, MIB, key="y")
    same.upload(other, source(MIB))
    assert loom_standin.stats()["tus_requests_with_key"] > 0


def test_errors(loom: LoomClient, providers: Any, loom_standin: Any) -> None:
    loom_standin.set_fault(f"key:{LOOM_KEY}", status=429, times=1, retry_after=1)
    loom_standin.set_fault("*", status=502, times=1)
    assert new_video(loom, 10).size_bytes == 10
    loom_standin.set_fault(f"key:{LOOM_KEY}", status=401)
    with pytest.raises(KeyRejected, match="update your Loom key") as rejected:
        new_video(loom, 10, key="other")
    assert LOOM_KEY not in str(rejected.value)
    loom_standin.reset()
    loom_standin.set_fault("*", status=413, endpoint="POST /v1/videos")
    with pytest.raises(ProviderRejected, match="too large"):
        new_video(loom, 10, key="big")
    loom_standin.reset()
    loom_standin.set_fault("*", status=429, retry_after=120)
    with pytest.raises(RateLimited):
        new_video(loom, 10, key="slow")
    loom_standin.reset()
    loom_standin.set_fault("*", status=503)
    with pytest.raises(TemporaryFault):
        new_video(loom, 10, key="down")


def test_rechunk_regroups_without_losing_bytes() -> None:
    pieces = [b"a" * 5, b"b" * 7, b"c" * 1, b"d" * 20]
    bodies = list(rechunk(pieces, 8))
    assert b"".join(bodies) == b"".join(pieces)
    assert [len(b) for b in bodies] == [8, 8, 8, 8, 1]

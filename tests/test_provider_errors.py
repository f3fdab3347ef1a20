"""Nothing but the project's error tree leaves the provider clients, whatever the servers send.

Every client call is made against a stand-in that garbles its answer in each way a proxy or a
broken server would (a cut-off JSON body, an HTML page with status 200, a missing field, a bad
header) or answers an unusual status; the call must raise a `Fathom2LoomError` (a
`ProtocolError` for what cannot be read), never a library's exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devkit.standins.content import iter_content
from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin
from fathom2loom.errors import Fathom2LoomError, ProtocolError, TemporaryFault
from fathom2loom.providers.fathom import FathomClient
from fathom2loom.providers.loom import LoomClient
from tests.conftest import FATHOM_KEY, LOOM_KEY

Call = Callable[[Any, Any], Any]
WEBHOOK_URL = "http://127.0.0.1:9/fathom/errors"
GARBLES = [
    *("invalid_json", "html", "drop:items", "drop:status", "drop:download_id", "drop:id"),
    "drop:secret",
]


def _download_status(fathom: FathomClient, standin: FathomStandin) -> Any:
    download_id = standin_download(standin)
    return fathom.download_status(31, download_id)


def standin_download(standin: FathomStandin) -> str:
    with standin.lock:
        return next(iter(standin._downloads))


FATHOM_CALLS: dict[str, tuple[str, Call]] = {
    "meetings": ("GET /meetings", lambda f, s: list(f.meetings())),
    "transcript": ("GET /recordings/{id}/transcript", lambda f, s: f.transcript(31)),
    "summary": ("GET /recordings/{id}/summary", lambda f, s: f.summary(31)),
    "request_download": ("POST /recordings/{id}/download", lambda f, s: f.request_download(31)),
    "download_status": ("GET /recordings/{id}/downloads/{download_id}", _download_status),
    "create_webhook": ("POST /webhooks", lambda f, s: f.create_webhook(WEBHOOK_URL)),
    "delete_webhook": (
        "DELETE /webhooks/{webhook_id}",
        lambda f, s: f.delete_webhook(f.create_webhook(WEBHOOK_URL).id),
    ),
}


def _video(loom: LoomClient, key: str = "errors") -> Any:
    return loom.create_video(
        title="t",
        description="d",
        size_bytes=300_000,
        content_type="video/mp4",
        idempotency_key=key,
    )


def _upload(loom: LoomClient, standin: LoomStandin) -> Any:
    video = _video(loom, "upload")
    return loom.upload(video, lambda offset: iter_content(1, 300_000, start=offset))


LOOM_CALLS: dict[str, tuple[str, Call]] = {
    "create_video": ("POST /v1/videos", lambda c, s: _video(c, "create")),
    "get_video": ("GET /v1/videos/{id}", lambda c, s: c.get_video(_video(c, "get").id)),
    "tus_create": ("POST /tus/", _upload),
    "tus_patch": ("PATCH /tus/{upload_id}", _upload),
}


def outcome(call: Callable[[], Any]) -> BaseException | None:
    try:
        call()
    except Exception as exc:
        return exc
    return None


@pytest.fixture
def fathom(providers: Any, fathom_standin: FathomStandin) -> FathomClient:
    fathom_standin.add_meeting(FATHOM_KEY, 31)
    client: FathomClient = providers.fathom(FATHOM_KEY)
    client.request_download(31)
    return client


@pytest.fixture
def loom(providers: Any) -> LoomClient:
    client: LoomClient = providers.loom(LOOM_KEY)
    return client


# What each call reads of an answer, so which garbles it must notice: a call that reads what was
# garbled raises a `ProtocolError` (retried later, never taken as an answer); a garble of what it
# does not read (another field, a header it ignores, a body of a 204) leaves it untouched.
FATHOM_READS: dict[str, set[str]] = {
    "meetings": {"drop:items"},
    "request_download": {"drop:download_id", "drop:status"},
    "download_status": {"drop:download_id", "drop:status"},
    "create_webhook": {"drop:id", "drop:secret"},
}
LOOM_READS: dict[str, set[str]] = {
    "create_video": {"html", "invalid_json", "drop:id", "drop:status"},
    "get_video": {"html", "invalid_json", "drop:id", "drop:status"},
}


def fathom_outcome(name: str, garble: str) -> type[Exception] | None:
    if garble == "html" or (garble == "invalid_json" and name != "delete_webhook"):  # 204
        return ProtocolError
    return ProtocolError if garble in FATHOM_READS.get(name, set()) else None


def loom_outcome(name: str, garble: str) -> type[Exception] | None:
    if name == "tus_create" and garble in ("html", "header:Location="):
        return TemporaryFault  # No upload URL came back: the create is tried again later.
    # A PATCH's body is never read; a bad Upload-Offset makes the client ask (HEAD) and go on.
    return ProtocolError if garble in LOOM_READS.get(name, set()) else None


@pytest.mark.parametrize("garble", GARBLES)
@pytest.mark.parametrize("name", list(FATHOM_CALLS))
def test_fathom_calls_raise_only_our_errors(
    fathom: FathomClient, fathom_standin: FathomStandin, name: str, garble: str
) -> None:
    endpoint, call = FATHOM_CALLS[name]
    fathom_standin.set_fault("*", endpoint=endpoint, garble=garble)
    raised = outcome(lambda: call(fathom, fathom_standin))
    expected = fathom_outcome(name, garble)
    assert type(raised) is (expected or type(None)), repr(raised)
    if raised is not None:
        assert isinstance(raised, Fathom2LoomError) and raised.retryable
        assert "whsec_" not in repr(raised) and FATHOM_KEY not in str(raised)


# `²` and `١` (UTF-8 on the wire, as a server would send them) pass `str.isdigit`.
BAD_OFFSETS = [f"header:Upload-Offset={v.encode().decode('latin-1')}" for v in ("x", "²", "١")]


@pytest.mark.parametrize("garble", [*GARBLES, *BAD_OFFSETS, "header:Location="])
@pytest.mark.parametrize("name", list(LOOM_CALLS))
def test_loom_calls_raise_only_our_errors(
    loom: LoomClient, loom_standin: LoomStandin, name: str, garble: str
) -> None:
    endpoint, call = LOOM_CALLS[name]
    loom_standin.set_fault("*", endpoint=endpoint, garble=garble)
    raised = outcome(lambda: call(loom, loom_standin))
    expected = loom_outcome(name, garble)
    assert type(raised) is (expected or type(None)), repr(raised)
    if raised is not None:
        assert isinstance(raised, Fathom2LoomError) and raised.retryable
        assert LOOM_KEY not in str(raised)


@pytest.mark.parametrize("status", [400, 402, 405, 409, 410, 418, 451, 500, 501, 507])
def test_unusual_statuses_are_typed(
    fathom: FathomClient, loom: LoomClient, fathom_standin: Any, loom_standin: Any, status: int
) -> None:
    fathom_standin.set_fault("*", status=status)
    loom_standin.set_fault("*", status=status)
    for call in (lambda: list(fathom.meetings()), lambda: _video(loom, f"s{status}")):
        raised = outcome(call)
        assert isinstance(raised, Fathom2LoomError), repr(raised)
        assert raised.retryable == (status >= 500)


def test_a_file_storage_that_garbles_its_answer(
    fathom: FathomClient, fathom_standin: FathomStandin
) -> None:
    _, file = fathom.wait_for_file(31, timeout=10)
    fathom_standin.set_fault("recording:31", endpoint="GET /_files/{token}", garble="html")
    raised = outcome(lambda: b"".join(fathom.stream(file)))
    # A page where the file should be: not taken for the file (it would be uploaded as video)
    assert isinstance(raised, TemporaryFault), repr(raised)

"""The PocketBase client against a real server: paging, quoting, re-auth, batches, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devkit.local_servers import LocalPocketBase, free_port
from fathom2loom.errors import (
    PocketBaseBatchFailed,
    PocketBaseForbidden,
    PocketBaseGarbled,
    PocketBaseNotFound,
    PocketBaseRequestError,
    PocketBaseUnavailable,
    PocketBaseValidation,
)
from fathom2loom.pocketbase.client import BatchOp, PocketBase
from fathom2loom.pocketbase.filters import FilterTooLong, pb_filter
from fathom2loom.queue_rows import DISPATCH_FIELDS
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, UserSession
from tests.http_proxy import GARBLES, Proxy

MakeUser = Callable[[str], UserSession]
NOW = "2026-11-25 10:00:00.000Z"
TRICKY = [
    "plain",
    "it's",
    'say "hi"',
    "back\\slash",
    "ends with \\",
    "\\'",
    '\\"',
    "new\nline",
    "tab\there",
    "üñí ✓ 日本語 🎥",
    "' || meeting_id != '",
    '" || meeting_id != "',
    "a'b\"c\\d",
    "%_like",
]


def queue_rows(owner: UserSession, count: int, **extra: object) -> list[BatchOp]:
    return [
        BatchOp(
            "POST",
            "queue",
            body={"user_id": owner.id, "meeting_id": str(i), "status": "pending", **extra},
        )
        for i in range(count)
    ]


def test_list_all_walks_every_page(pb: PocketBase, make_user: MakeUser) -> None:
    owner = make_user("pager")
    pb.batch(queue_rows(owner, 125))
    # Offset paging, 5 pages of 25 (the last one full, then an empty one)
    rows = list(pb.list_all("queue", sort="created,id", per_page=25))
    assert len(rows) == 125
    assert len({r["id"] for r in rows}) == 125
    # Keyset paging in (meeting_id, id) order, filtered
    walked = list(pb.walk("queue", filter="meeting_id != '7'", key="meeting_id", per_page=10))
    assert [r["meeting_id"] for r in walked] == sorted(str(i) for i in range(125) if i != 7)


def test_walk_neither_skips_nor_repeats_while_rows_are_deleted(
    pb: PocketBase, make_user: MakeUser
) -> None:
    owner = make_user("walker")
    pb.batch(queue_rows(owner, 60))
    seen: list[str] = []
    for row in pb.walk("queue", per_page=10):
        seen.append(row["id"])
        if len(seen) == 10:
            # Rows already seen disappear mid-walk (offset paging would now skip ten rows)
            pb.batch([BatchOp("DELETE", "queue", id=i) for i in seen])
    assert len(seen) == len(set(seen)) == 60


@pytest.mark.parametrize("value", TRICKY)
def test_filter_values_are_quoted_not_concatenated(
    pb: PocketBase, make_user: MakeUser, value: str
) -> None:
    owner = make_user("quoter")
    wanted = pb.create("logs", {"user_id": owner.id, "msg": value, "level": "info", "ts": NOW})
    pb.create("logs", {"user_id": owner.id, "msg": "other", "level": "info", "ts": NOW})
    found = list(pb.list_all("logs", filter=pb_filter("msg = {:m}", m=value)))
    assert [r["id"] for r in found] == [wanted["id"]]


def test_filter_placeholders_are_checked() -> None:
    with pytest.raises(KeyError):
        pb_filter("a = {:missing}")
    with pytest.raises(FilterTooLong):
        pb_filter("a = {:v}", v="x" * 4000)
    assert pb_filter("n = {:n} && b = {:b} && z = {:z}", n=3, b=True, z=None) == (
        "n = 3 && b = true && z = null"
    )


def test_reauthenticates_after_the_token_is_revoked(pb: PocketBase) -> None:
    # Given a client that has logged in
    pb.get_settings()
    old_token = pb._token
    # When the superuser's password is reset (PocketBase then refuses every older token)
    me = pb.first("_superusers", filter=pb_filter("email = {:e}", e=ADMIN_EMAIL))
    assert me is not None
    pb.update(
        "_superusers",
        me["id"],
        {"password": ADMIN_PASSWORD, "passwordConfirm": ADMIN_PASSWORD},
    )
    probe = httpx.get(f"{pb.base_url}/api/settings", headers={"Authorization": old_token or ""})
    assert probe.status_code in (401, 403)
    # Expect the next call to log in again and succeed
    assert pb.get_settings()["batch"]["enabled"] is True
    assert pb._token != old_token


def test_batch_of_several_hundred_writes(pb: PocketBase, make_user: MakeUser) -> None:
    owner = make_user("batcher")
    # 450 creates cross several batch transactions (batch_size is 200)
    created = pb.batch(queue_rows(owner, 450))
    assert len(created) == 450
    ids = [row["id"] for row in created]
    # Updates and upserts with deterministic ids, repeated: still 450 rows, new values
    pb.batch([BatchOp("PATCH", "queue", id=i, body={"position": n + 1}) for n, i in enumerate(ids)])
    upserts = [
        BatchOp(
            "PUT",
            "queue",
            id=f"upsert{n:09d}",
            body={"user_id": owner.id, "meeting_id": str(10_000 + n)},
        )
        for n in range(300)
    ]
    upserts = [
        BatchOp(o.method, o.collection, o.id, {**o.body, "status": "pending"}) for o in upserts
    ]
    pb.batch(upserts)
    pb.batch(upserts)
    rows = list(pb.list_all("queue", per_page=1000))
    assert len(rows) == 750
    assert sorted(r["position"] for r in rows if r["id"][:6] != "upsert") == list(range(1, 451))


def test_a_failing_batch_names_its_request_and_rolls_back(
    pb: PocketBase, make_user: MakeUser
) -> None:
    owner = make_user("roller")
    ops = queue_rows(owner, 10)
    ops[6] = BatchOp("POST", "queue", body={"user_id": owner.id, "status": "pending"})
    with pytest.raises(PocketBaseBatchFailed) as caught:
        pb.batch(ops)
    assert caught.value.index == 6
    assert "meeting_id" in str(caught.value)
    assert list(pb.list_all("queue")) == []


def test_typed_errors(pb: PocketBase, pb_server: LocalPocketBase) -> None:
    with pytest.raises(PocketBaseNotFound):
        pb.get("queue", "doesnotexist123")
    with pytest.raises(PocketBaseNotFound):
        pb.get("no_such_collection", "x")
    with pytest.raises(PocketBaseValidation) as invalid:
        pb.create("queue", {"status": "nonsense"})
    assert set(invalid.value.field_errors) >= {"user_id", "meeting_id", "status"}
    with pytest.raises(PocketBaseRequestError):
        list(pb.list_all("queue", filter="meeting_id = = 3"))
    with (
        PocketBase(pb_server.url, ADMIN_EMAIL, "wrong-password-1") as wrong,
        pytest.raises(PocketBaseForbidden) as refused,
    ):
        wrong.get_settings()
    assert "wrong-password-1" not in str(refused.value)


def test_unreachable_server_is_retried_then_unavailable() -> None:
    port = free_port()
    with PocketBase(
        f"http://127.0.0.1:{port}", ADMIN_EMAIL, ADMIN_PASSWORD, retry_attempts=3, backoff_base=0.01
    ) as pb:
        started = time.monotonic()
        with pytest.raises(PocketBaseUnavailable, match="3 times") as away:
            pb.get("queue", "x")
        assert time.monotonic() - started < 10
    assert away.value.unreachable  # No answer at all: the server's outage, not the request's


def test_connection_faults_are_retried_until_the_server_is_back(tmp_path: Path) -> None:
    # Given a PocketBase that is down when the request is made and comes up a moment later
    server = LocalPocketBase(tmp_path / "pb_data", None)
    server.create_superuser(ADMIN_EMAIL, ADMIN_PASSWORD)
    starter = threading.Timer(1.0, server.start)
    starter.start()
    try:
        with PocketBase(
            server.url, ADMIN_EMAIL, ADMIN_PASSWORD, retry_attempts=12, backoff_base=0.5
        ) as pb:
            # Expect the call to succeed once it is up, not to fail on the first refusal
            assert "batch" in pb.get_settings()
    finally:
        starter.join()
        server.stop()


@pytest.fixture
def proxy(pb: PocketBase) -> Iterator[Proxy]:
    running = Proxy(pb.base_url).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("garble", sorted(GARBLES))
def test_a_garbled_success_is_an_error_of_the_tree(
    pb: PocketBase, make_user: MakeUser, proxy: Proxy, garble: str
) -> None:
    # Given PocketBase behind a proxy, a user with a row, and a client already logged in
    owner = make_user("garbled")
    row = pb.create("queue", {"user_id": owner.id, "meeting_id": "7", "status": "pending"})
    client = PocketBase(proxy.url, ADMIN_EMAIL, ADMIN_PASSWORD, retry_attempts=1)
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: client.get("queue", row["id"]),
        "create": lambda: client.create("logs", {"level": "info", "msg": "m", "ts": NOW}),
        "update": lambda: client.update("queue", row["id"], {"position": 3}),
        "page": lambda: client.page("queue"),
        "list_all": lambda: list(client.list_all("queue")),
        "walk": lambda: list(client.walk("queue")),
        "first": lambda: client.first("queue", filter="id != ''"),
        "batch": lambda: client.batch([BatchOp("PATCH", "queue", id=row["id"], body={})]),
        "active_rows": lambda: client.bulk.active_rows(DISPATCH_FIELDS),
        "collections": lambda: client.collections(),
        "settings": lambda: client.get_settings(),
    }
    try:
        client.authenticate()
        # When every answer that comes back with 200 is garbled on the way
        proxy.garble = garble
        for name, call in calls.items():
            # Expect each call to raise the tree's transient error, never a KeyError or TypeError
            with pytest.raises(PocketBaseGarbled) as raised:
                call()
                pytest.fail(f"{name} took a garbled answer ({garble})")
            assert isinstance(raised.value, PocketBaseUnavailable), name
            assert "PocketBase answered" in str(raised.value), name
        # And a login answered with garbage to be one too
        with pytest.raises(PocketBaseGarbled):
            client.authenticate(force=True)
    finally:
        client.close()

"""PocketBase realtime: events arrive, and the listener comes back after the server drops it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fathom2loom.dispatcher import sync_once
from fathom2loom.pocketbase.client import BatchOp, PocketBase
from fathom2loom.pocketbase.realtime import RealtimeListener, parse_sse
from fathom2loom.queue_events import NewWorkFilter
from fathom2loom.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, UserSession, start_pocketbase


def test_sse_parsing() -> None:
    lines = ["id:1", "event:PB_CONNECT", 'data:{"clientId":"x"}', "", ": comment", "data: a"]
    lines += ["data: b", ""]
    assert list(parse_sse(iter(lines))) == [("PB_CONNECT", '{"clientId":"x"}'), ("message", "a\nb")]


def wait_for(condition: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_listener_reconnects_and_subscribes_again(tmp_path: Path) -> None:
    server = start_pocketbase(tmp_path)
    pb = PocketBase(server.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    user = pb.create(
        "users", {"email": "rt@u.test", "password": "p" * 12, "passwordConfirm": "p" * 12}
    )
    seen: list[tuple[str, str]] = []
    listener = RealtimeListener(
        pb,
        ["queue/*"],
        lambda topic, data: seen.append((data["action"], data["record"]["meeting_id"])),
    )
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: listener.connections == 1)
        row = {"user_id": user["id"], "status": "pending"}
        pb.create("queue", {**row, "meeting_id": "1"})
        wait_for(lambda: ("create", "1") in seen)
        # When PocketBase goes away and comes back (every connection is dropped)
        server.stop()
        server.start()
        # Expect a new connection, subscribed again, hearing new rows
        wait_for(lambda: listener.connections == 2)
        pb.create("queue", {**row, "meeting_id": "2"})
        wait_for(lambda: ("create", "2") in seen)
    finally:
        pb.bulk.route_missing = False
        listener.stop.set()
        server.stop()
        pb.close()


def test_only_new_work_wakes_the_dispatcher(
    pb: PocketBase,
    settings: Settings,
    redis_client: Any,
    make_user: Callable[[str], UserSession],
) -> None:
    """The wake-up's filter over PocketBase's real event stream: a sync never wakes itself."""
    user = make_user("rt")
    heard: list[tuple[str, str]] = []
    wakes: list[str] = []
    new_work = NewWorkFilter()

    def on_event(topic: str, data: dict[str, Any]) -> None:
        record = data["record"]
        heard.append((data["action"], record["status"]))
        if new_work.means_new_work(data["action"], record):
            wakes.append(f"{data['action']} {record['status']}")

    listener = RealtimeListener(pb, ["queue/*"], on_event)
    threading.Thread(target=listener.run, daemon=True).start()

    def settled() -> list[str]:
        """The wakes since the last call, once the events have stopped coming."""
        count = -1
        while count != len(heard):
            count = len(heard)
            time.sleep(0.3)
        taken = list(wakes)
        wakes.clear()
        return taken

    try:
        wait_for(lambda: listener.connections == 1)
        # Rows created: new work, each
        row = {"user_id": user.id, "status": "pending"}
        pb.batch([BatchOp("POST", "queue", body={**row, "meeting_id": str(n)}) for n in range(12)])
        assert settled() == ["create pending"] * 12
        # A sync writes every position: in bulk no event at all, through the batch API (a
        # PocketBase without the bulk route) one per row, and neither wakes the dispatcher
        sent: list[str] = []
        before = len(heard)
        sync_once(pb, redis_client, settings, sent.append)
        assert settled() == [] and len(heard) == before
        pb.bulk.route_missing = True
        pb.update("queue", sent[0], {"status": "completed", "position": 0})
        assert settled() == ["update completed"]  # The head of the line moved
        before = len(heard)
        sync_once(pb, redis_client, settings, sent.append)
        assert settled() == [] and len(heard) >= before + 10
        # A worker taking its row and reporting progress: no new work
        pb.update("queue", sent[1], {"status": "processing"})
        pb.update("queue", sent[1], {"bytes_done": 1000})
        assert settled() == []
        # A transfer ending, a failed row retried, a row cancelled: each is new work
        pb.update("queue", sent[1], {"status": "failed"})
        assert settled() == ["update failed"]
        pb.update("queue", sent[1], {"status": "pending"})
        assert settled() == ["update pending"]
        pb.update("queue", sent[2], {"status": "cancelled"})
        assert settled() == ["update cancelled"]
    finally:
        pb.bulk.route_missing = False
        listener.stop.set()

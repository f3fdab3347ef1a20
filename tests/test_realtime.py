"""PocketBase realtime: events arrive, and the listener comes back after the server drops it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.realtime import RealtimeListener, parse_sse
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, start_pocketbase


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
        listener.stop.set()
        server.stop()
        pb.close()

"""The bulk routes inside PocketBase (pb_hooks/bulk.pb.js), through the service's own client.

Raw SQL skips PocketBase's field checks, rules, record hooks and realtime events, so these tests
hold the routes to what the records API would do: only the service may call them, a bad value
refuses the whole list with its index and writes nothing, a retried log batch is stored once,
users still hear their rows' new positions, and a PocketBase without the routes still works
(through the batch API), with a warning.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from fathom2loom.bootstrap import bootstrap
from fathom2loom.errors import PocketBaseRequestError, PocketBaseValidation
from fathom2loom.logsink.records import new_id
from fathom2loom.pocketbase import bulk
from fathom2loom.pocketbase.bulk import ROUTE, BulkRefused
from fathom2loom.pocketbase.client import PocketBase, RawJSON
from fathom2loom.pocketbase.schema import desired_collections
from fathom2loom.queue_rows import DISPATCH_FIELDS
from fathom2loom.queue_store import QueueStore
from fathom2loom.settings import DEFAULT_HOOKS_DIR, DEFAULT_MIGRATIONS_DIR
from tests.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    UserSession,
    make_settings,
    start_pocketbase,
)


def seed(pb: PocketBase, user_id: str, **fields: Any) -> str:
    meeting = fields.pop("meeting_id", str(secrets.randbelow(10**12)))
    row = {"user_id": user_id, "meeting_id": meeting, "status": "pending", **fields}
    return str(pb.create("queue", row)["id"])


def log_record(**fields: Any) -> dict[str, Any]:
    record = {
        "id": new_id(),
        "level": "info",
        "msg": "moved",
        "ts": "2026-11-25 10:00:00.123Z",
        "user_id": "",
        "component": "transfer",
        "metadata": {"row_id": "r1"},
    }
    return {**record, **fields}


def stored_logs(pb: PocketBase) -> list[dict[str, Any]]:
    return list(pb.list_all("logs", sort="ts,id"))


def wait_for(condition: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def test_only_a_superuser_may_call_the_routes(
    pb: PocketBase, make_user: Callable[[str], UserSession]
) -> None:
    alice = make_user("alice")
    row = seed(pb, alice.id, status="pending", position=1)
    calls = [
        ("POST", "positions", {"positions": [[row, 9]]}),
        ("POST", "logs", {"records": [log_record(user_id=alice.id)]}),
        ("GET", "active", None),
    ]
    anonymous = httpx.Client(base_url=pb.base_url, timeout=10)
    for method, kind, body in calls:
        # When nobody signed in, or a user, calls a route
        nobody = anonymous.request(method, f"{ROUTE}/{kind}", json=body)
        user = alice.call(method, f"{ROUTE}/{kind}", json=body)
        # Expect PocketBase's refusals, and nothing written
        assert nobody.status_code == 401, (kind, nobody.text)
        assert user.status_code == 403, (kind, user.text)
    assert pb.get("queue", row)["position"] == 1
    assert stored_logs(pb) == []
    anonymous.close()


def test_a_bad_position_refuses_the_list_with_its_index(
    pb: PocketBase, make_user: Callable[[str], UserSession]
) -> None:
    alice = make_user("alice")
    rows = [seed(pb, alice.id, status="pending", position=n + 1) for n in range(3)]
    refusals: dict[tuple[str, int], list[tuple[str, int]]] = {
        ("position", 1): [(rows[0], 5), (rows[1], -1), (rows[2], 7)],
        ("id", 2): [(rows[0], 5), (rows[1], 6), ("not-an-id", 7)],
    }
    for (field, index), pairs in refusals.items():
        # When one value of the list is bad
        with pytest.raises(BulkRefused) as refused:
            pb.bulk.positions(dict(pairs))
        # Expect its index and field named, and not one position written
        assert (refused.value.field, refused.value.index) == (field, index)
        assert [pb.get("queue", r)["position"] for r in rows] == [1, 2, 3]
    # A position that is not a whole number is refused in words, too
    with pytest.raises(PocketBaseValidation) as answer:
        pb.request("POST", f"{ROUTE}/positions", json={"positions": [[rows[0], 1.5]]})
    assert answer.value.message == (
        "Record 0 was refused (position: must be a whole number from 0 to 1000000000); nothing was"
        " written."
    )
    # And a body without the list is refused as such
    with pytest.raises(PocketBaseValidation) as answer:
        pb.request("POST", f"{ROUTE}/positions", json={"rows": []})
    assert answer.value.data == {"index": -1, "field": "positions", "reason": "must be a list"}
    # While good ones are written, a row deleted meanwhile passed over
    pb.delete("queue", rows[2])
    assert pb.bulk.positions({rows[0]: 3, rows[1]: 1, rows[2]: 2}) == 3
    assert [pb.get("queue", r)["position"] for r in rows[:2]] == [3, 1]


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("level", {"level": "verbose"}),
        ("level", {"level": None}),
        ("ts", {"ts": "yesterday"}),
        ("ts", {"ts": "2026-13-45 99:00:00Z"}),
        ("ts", {"ts": "2026-02-30 10:00:00.000Z"}),  # no 30 February
        ("ts", {"ts": "2026-11-25 24:00:00Z"}),
        ("ts", {"ts": "2026-11-25 10:00:00.123Zjunk"}),
        ("ts", {"ts": "2026-11-25 10:00:00.Z"}),
        ("ts", {"ts": "2026-11-25 10:00:00.12a4Z"}),
        ("user_id", {"user_id": "nosuchuser0000"}),
        ("user_id", {"user_id": "abc"}),
        ("id", {"id": "SHOUTING-ID-123"}),
        ("msg", {"msg": "x" * 20001}),
        ("component", {"component": ["not", "text"]}),
        ("record", None),
    ],
)
def test_a_bad_log_record_refuses_the_batch_with_its_index(
    pb: PocketBase, make_user: Callable[[str], UserSession], field: str, bad: Any
) -> None:
    alice = make_user("alice")
    good = [log_record(user_id=alice.id), log_record(), log_record(level="error")]
    broken = log_record(**bad) if isinstance(bad, dict) else "not a record"
    # When the third record of four is bad
    with pytest.raises(BulkRefused) as refused:
        pb.bulk.logs([*good[:2], broken, good[2]])  # type: ignore[list-item]
    # Expect its index and field, and none of the four stored
    assert (refused.value.index, refused.value.field) == (2, field)
    assert stored_logs(pb) == []
    # The good ones alone go in, as the collection reads them
    pb.bulk.logs(good)
    stored = {r["id"]: r for r in stored_logs(pb)}
    assert set(stored) == {r["id"] for r in good}
    first = stored[good[0]["id"]]
    assert (first["user_id"], first["level"], first["ts"]) == (
        alice.id,
        "info",
        "2026-11-25 10:00:00.123Z",
    )
    assert first["metadata"] == {"row_id": "r1"}


def test_an_index_counts_from_the_start_of_the_whole_list(
    pb: PocketBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # When the records go in several requests and the fifth is bad
    monkeypatch.setattr(bulk, "CHUNK", 2)
    records = [log_record() for _ in range(6)]
    records[4]["level"] = "loud"
    with pytest.raises(BulkRefused) as refused:
        pb.bulk.logs(records)
    # Expect its place in the whole list; the chunks before it are in, nothing after it
    assert refused.value.index == 4
    assert {r["id"] for r in stored_logs(pb)} == {r["id"] for r in records[:4]}


def test_positions_are_whole_numbers_of_a_sane_size(
    pb: PocketBase, make_user: Callable[[str], UserSession]
) -> None:
    alice = make_user("alice")
    row = seed(pb, alice.id, status="pending", position=1)
    for bad in ("1e20", "100000000000000000000", str(2**63), "1000000001", "-0.5"):
        # When a position is beyond any queue, or not whole (sent as written)
        body = RawJSON(f'{{"positions": [["{row}", {bad}]]}}'.encode())
        with pytest.raises(PocketBaseValidation) as refused:
            pb.request("POST", f"{ROUTE}/positions", json=body)
        # Expect it refused, naming the field, and nothing written
        assert refused.value.data["field"] == "position", bad
        assert pb.get("queue", row)["position"] == 1
    assert pb.bulk.positions({row: 1_000_000_000}) == 1


def test_positions_are_written_only_to_rows_still_in_line(
    pb: PocketBase, make_user: Callable[[str], UserSession]
) -> None:
    alice = make_user("alice")
    statuses = ["pending", "processing", "completed", "failed", "cancelled"]
    rows = {
        s: seed(pb, alice.id, status=s, position=0, meeting_id=str(n))
        for n, s in enumerate(statuses)
    }
    # When the dispatcher writes a position to each (read before they moved on)
    pb.bulk.positions({row: 5 for row in rows.values()})
    # Expect only the pending row in line; a processing row takes 0 alone; the rest untouched
    assert {s: pb.get("queue", r)["position"] for s, r in rows.items()} == {
        "pending": 5,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    pb.update("queue", rows["processing"], {"position": 3})
    pb.bulk.positions({rows["processing"]: 0})
    assert pb.get("queue", rows["processing"])["position"] == 0


def test_a_cancel_between_a_syncs_read_and_its_write_keeps_position_0(
    pb: PocketBase, make_user: Callable[[str], UserSession]
) -> None:
    alice = make_user("alice")
    rows = [seed(pb, alice.id, status="pending", position=n + 1) for n in range(16)]

    def cancel(row: str) -> int:
        answer = alice.call("PATCH", alice.records("queue", row), json={"status": "cancelled"})
        return int(answer.json()["position"]) if answer.status_code == 200 else -1

    # Given a sync that read the line (16 pending rows), then the user cancels half of them
    read = QueueStore(pb).active()
    assert [cancel(r) for r in rows[:8]] == [0] * 8
    # When the sync writes the positions it planned from what it read
    pb.bulk.positions({r.id: 16 - r.position + 1 for r in read})
    # Expect the cancelled rows still at 0, the others moved
    positions = [pb.get("queue", r)["position"] for r in rows]
    assert positions[:8] == [0] * 8 and positions[8:] == [8, 7, 6, 5, 4, 3, 2, 1]
    # And the same with the race run for real: bursts of 16 simultaneous cancels while the
    # dispatcher keeps writing positions
    for burst in range(4):
        line = [seed(pb, alice.id, status="pending", position=n + 1) for n in range(16)]
        stop = threading.Event()

        def syncs(line: list[str] = line, stop: threading.Event = stop) -> None:
            turn = 0
            while not stop.is_set():
                turn += 1
                pb.bulk.positions({row: (n + turn) % 16 + 1 for n, row in enumerate(line)})

        writer = threading.Thread(target=syncs)
        writer.start()
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(cancel, line))
        stop.set()
        writer.join()
        assert answers == [0] * 16, burst
        after = [pb.get("queue", r) for r in line]
        assert [(r["status"], r["position"]) for r in after] == [("cancelled", 0)] * 16, burst


def test_a_body_over_16_mib_is_read_whole_and_one_over_the_limit_is_a_413(
    pb: PocketBase,
) -> None:
    # When 7,000 records of 3 kB (21 MB) come in one request, as after an outage
    records = [log_record(msg="trace " + "x" * 3000) for _ in range(7000)]
    body = json.dumps({"records": records}).encode()
    assert len(body) > 20 << 20
    answer = pb.request("POST", f"{ROUTE}/logs", json=RawJSON(body), idempotent=True)
    # Expect them all written (the route read the body whole)
    assert answer["written"] == 7000
    # And a body over the route's limit refused as too large, not as malformed
    huge = RawJSON(b'{"records": [' + b'"' + b"x" * (65 << 20) + b'"]}')
    with pytest.raises(PocketBaseRequestError) as refused:
        pb.request("POST", f"{ROUTE}/logs", json=huge, idempotent=True)
    assert refused.value.status == 413


def test_a_retried_log_batch_writes_each_record_once(pb: PocketBase) -> None:
    records = [log_record(msg=f"record {n}") for n in range(50)]
    first = pb.request("POST", f"{ROUTE}/logs", json={"records": records})
    # When the same batch comes again (its answer was lost), partly changed even
    again = [*records[:25], *(dict(r, msg="changed") for r in records[25:])]
    second = pb.request("POST", f"{ROUTE}/logs", json={"records": again})
    # Expect every record once, as first written
    assert (first["written"], second["written"]) == (50, 0)
    stored = stored_logs(pb)
    assert len(stored) == 50
    assert {r["msg"] for r in stored} == {f"record {n}" for n in range(50)}


def test_users_hear_the_new_positions_of_their_own_rows(
    pb: PocketBase, make_user: Callable[[str], UserSession]
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    mine = [seed(pb, alice.id, status="pending", position=n + 1) for n in range(2)]
    theirs = seed(pb, bob.id, status="pending", position=3)
    # When alice follows her rows and the dispatcher moves everyone's
    followed = alice.subscribe("fathom2loom/positions", "queue/*")
    pb.bulk.positions({mine[0]: 2, mine[1]: 3, theirs: 1})
    # Expect one message with her rows' new positions, nothing about bob's
    events = wait_for(lambda: followed.events)
    assert events[0] == ("fathom2loom/positions", {"positions": {mine[0]: 2, mine[1]: 3}})
    # And when bob's row alone moves, alice hears nothing: the next thing she hears is the next
    # move of her own (events come in order), so nothing came between, no record event either
    pb.bulk.positions({theirs: 4})
    pb.bulk.positions({mine[0]: 5})
    wait_for(lambda: len(followed.events) > 1)
    assert followed.events == [
        ("fathom2loom/positions", {"positions": {mine[0]: 2, mine[1]: 3}}),
        ("fathom2loom/positions", {"positions": {mine[0]: 5}}),
    ]


def test_the_active_rows_read_in_bulk_match_the_records_api(
    pb: PocketBase, make_user: Callable[[str], UserSession]
) -> None:
    alice = make_user("alice")
    for n, status in enumerate(["pending", "processing", "completed", "failed", "pending"]):
        seed(pb, alice.id, status=status, position=n, meeting_id=str(n))
    # When the dispatcher reads the rows through the route, then through the records API
    bulk_rows = QueueStore(pb).active()
    pb.bulk.route_missing = True
    try:
        api_rows = QueueStore(pb).active()
    finally:
        pb.bulk.route_missing = False
    # Expect the same active rows, the same way
    assert bulk_rows == api_rows
    assert sorted(r.status for r in bulk_rows) == ["pending", "pending", "processing"]


def test_without_the_routes_the_batch_api_does_the_work_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A PocketBase whose hooks are older than the bulk routes
    old_hooks = tmp_path / "hooks"
    shutil.copytree(DEFAULT_HOOKS_DIR, old_hooks, ignore=shutil.ignore_patterns("bulk*"))
    server = start_pocketbase(tmp_path, hooks_dir=old_hooks)
    try:
        settings = make_settings(server.url, "redis://127.0.0.1:9")
        pb = PocketBase(server.url, ADMIN_EMAIL, ADMIN_PASSWORD)
        # Expect bootstrap to say so
        report = bootstrap(settings, pb)
        assert any("no bulk route for positions" in w for w in report.warnings), report
        user = pb.create(
            "users", {"email": "a@u.test", "password": "p" * 12, "passwordConfirm": "p" * 12}
        )
        rows = [seed(pb, user["id"], status="pending", position=0) for _ in range(3)]
        records = [log_record(user_id=user["id"]) for _ in range(3)]
        # When the service reads rows and writes positions and logs
        with caplog.at_level(logging.WARNING, logger="fathom2loom.pocketbase.bulk"):
            assert QueueStore(pb).write_positions({r: n + 1 for n, r in enumerate(rows)}) == 3
            pb.bulk.logs(records)
            pb.bulk.logs(records)  # retried: upserted, not doubled
            active = QueueStore(pb).active()
        # Expect it all done through the public APIs, and one warning saying so
        assert sorted(pb.get("queue", r)["position"] for r in rows) == [1, 2, 3]
        assert len(list(pb.list_all("logs"))) == 3
        assert len(active) == 3
        warnings = [r for r in caplog.records if r.name == "fathom2loom.pocketbase.bulk"]
        assert len(warnings) == 1 and "no bulk routes" in warnings[0].getMessage()
        # And a bad record is still refused with its index
        with pytest.raises(BulkRefused) as refused:
            pb.bulk.logs([log_record(), log_record(level="loud")])
        assert (refused.value.index, refused.value.field) == (1, "level")
        pb.close()
    finally:
        server.stop()


def test_the_dispatchers_fields_are_fields_of_the_migrated_queue() -> None:
    queue = next(c for c in desired_collections(DEFAULT_MIGRATIONS_DIR) if c["name"] == "queue")
    assert set(DISPATCH_FIELDS) <= {f["name"] for f in queue["fields"]}


def test_the_active_rows_route_reads_only_fields_the_queue_has(pb: PocketBase) -> None:
    for fields in ("", "id,user_id,no_such_field", "id,status;DROP TABLE queue"):
        with pytest.raises(PocketBaseValidation) as refused:
            pb.request("GET", f"{ROUTE}/active", params={"fields": fields})
        assert "must name fields of the queue collection" in refused.value.message
    assert pb.request("GET", f"{ROUTE}/active", params={"fields": "id"}) == {"items": []}


def test_the_routes_check_values_as_the_collections_fields_are_now(tmp_path: Path) -> None:
    # Given a PocketBase where a migration (here: an operator's change) narrowed `component` to
    # 10 characters and added a log level
    server = start_pocketbase(tmp_path)
    pb = PocketBase(server.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        logs = pb.request("GET", "/api/collections/logs")
        for item in logs["fields"]:
            if item["name"] == "component":
                item["max"] = 10
            if item["name"] == "level":
                item["values"] = [*item["values"], "notice"]
        pb.request("PATCH", f"/api/collections/{logs['id']}", json={"fields": logs["fields"]})
        # When log records come that the old limits took, or refused
        with pytest.raises(BulkRefused) as refused:
            pb.bulk.logs([log_record(level="notice"), log_record(component="c" * 11)])
        # Expect the route to check them as the fields are now, and say so
        assert (refused.value.index, refused.value.field) == (1, "component")
        assert refused.value.reason == "must be text of at most 10 characters"
        pb.bulk.logs([log_record(level="notice", component="c" * 10)])
        assert [r["level"] for r in pb.list_all("logs")] == ["notice"]
    finally:
        pb.close()
        server.stop()

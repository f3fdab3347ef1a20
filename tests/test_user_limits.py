"""What users may put into PocketBase through its API, as an outside auditor tried it: meeting ids
that are not what they seem, floods of rows and log records, accounts nobody verified, a
backdated place in line. Real PocketBase with the project's hooks; users with their own tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.local_servers import LocalPocketBase, LocalRedis
from devkit.standins.fathom import FathomStandin
from fathom2loom.api_keys import KeyStore, store_keys
from fathom2loom.auto_move.catch_up import catch_up
from fathom2loom.auto_move.store import AutoMoveStore
from fathom2loom.bootstrap import bootstrap
from fathom2loom.errors import ConfigError
from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.dates import parse_date, pb_date
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.providers.factory import Providers
from fathom2loom.queue_store import QueueStore
from fathom2loom.user_queue import QueueRefused, enqueue
from tests.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    ENCRYPTION_KEY,
    UserSession,
    make_settings,
    start_pocketbase,
)

MakeUser = Callable[[str], UserSession]
LIMITS = {
    "USER_MAX_ACTIVE_TRANSFERS": "5",
    "USER_LOG_MAX_BYTES": "512",
    "USER_LOGS_PER_MINUTE": "5",
    "REQUIRE_VERIFIED_USERS": "true",
}


def queue(user: UserSession, meeting: Any, **extra: Any) -> httpx.Response:
    body = {"user_id": user.id, "meeting_id": meeting, "status": "pending", **extra}
    return user.call("POST", user.records("queue"), json=body)


def note(user: UserSession, msg: str = "hello", **extra: Any) -> httpx.Response:
    body = {"user_id": user.id, "level": "info", "msg": msg, "ts": "2026-11-25 10:00:00Z"}
    return user.call("POST", user.records("logs"), json={**body, **extra})


# -- meeting ids: one spelling per recording ----------------------------------------------------


def test_a_meeting_id_is_ascii_digits_stored_without_leading_zeros(
    pb: PocketBase, make_user: MakeUser
) -> None:
    alice = make_user("alice")
    alice.save_keys()
    assert queue(alice, "1004").status_code == 200
    # When the same recording comes spelled otherwise, expect "already queued"
    for spelling in ("01004", "001004", " 1004 ", 1004):
        again = queue(alice, spelling)
        assert again.status_code == 400, spelling
        assert again.json()["message"].startswith("Meeting 1004 is already queued"), spelling
    # And what is no recording id at all refused, saying what one is
    for bad in ("١٠٠٤", "１００５", "²", "1e3", "-5", "12.0", "10 04", "1" * 19, "abc"):
        refused = queue(alice, bad)
        assert refused.status_code == 400, bad
        message = refused.json()["data"]["meeting_id"]["message"]
        assert message.startswith("The meeting id "), bad
        assert message.endswith("is not a Fathom recording id (1 to 18 digits 0-9)."), bad
    # While good ones are stored canonical: the largest, zero, leading zeros dropped
    made = [queue(alice, m) for m in ("999999999999999999", "0", "0042")]
    assert [r.status_code for r in made] == [200, 200, 200]
    assert [r.json()["meeting_id"] for r in made] == ["999999999999999999", "0", "42"]
    rows = {r["meeting_id"] for r in pb.list_all("queue")}
    assert rows == {"1004", "999999999999999999", "0", "42"}


def test_the_service_and_the_batch_api_meet_the_same_rule(
    pb: PocketBase, make_user: MakeUser
) -> None:
    alice = make_user("alice")
    # A superuser's row (the CLI, auto-move) is stored canonical too, and refused when bad
    assert (
        pb.create("queue", {"user_id": alice.id, "meeting_id": "0077", "status": "pending"})[
            "meeting_id"
        ]
        == "77"
    )
    with pytest.raises(Exception, match="not a Fathom recording id"):
        pb.create("queue", {"user_id": alice.id, "meeting_id": "٧٧", "status": "pending"})
    # And a user's batch request cannot go around the rule
    body = {
        "requests": [
            {
                "method": "POST",
                "url": "/api/collections/queue/records",
                "body": {"user_id": alice.id, "meeting_id": "٧٨", "status": "pending"},
            }
        ]
    }
    answer = alice.call("POST", "/api/batch", json=body)
    assert answer.status_code == 400
    assert [r["meeting_id"] for r in pb.list_all("queue")] == ["77"]


def test_a_meeting_id_sent_as_a_json_number_keeps_its_digits_or_is_refused(
    pb: PocketBase, make_user: MakeUser
) -> None:
    """PocketBase reads a JSON number as a float64: past 2^53 the digits stored would not be the
    ones sent (123456789012345678 became ...680, a recording nobody has)."""
    alice = make_user("alice")
    alice.save_keys()
    for bad in (123456789012345678, 2**53 + 1, 2**53):
        refused = queue(alice, bad)
        assert refused.status_code == 400, bad
        said = refused.json()["data"]["meeting_id"]["message"]
        assert said.startswith("The meeting id came as a JSON number past 2^53"), said
        assert said.endswith('send it as a string of 1 to 18 digits 0-9 ("1004").'), said
    for not_an_id in (-5, 12.5):
        refused = queue(alice, not_an_id)
        assert refused.status_code == 400, not_an_id
        said = refused.json()["data"]["meeting_id"]["message"]
        assert "is not a Fathom recording id" in said, said
    # However the collection is named (PocketBase finds it by id, or in any case), and in batch
    body = {"user_id": alice.id, "meeting_id": 123456789012345678, "status": "pending"}
    for url in ("/api/collections/QUEUE/records", "/api/collections/f2l_queue/records"):
        assert alice.call("POST", url, json=body).status_code == 400, url
    batch = {
        "requests": [{"method": "POST", "url": "/api/collections/Queue/records", "body": body}]
    }
    answer = alice.call("POST", "/api/batch", json=batch)
    assert answer.status_code == 400
    assert "past 2^53" in answer.json()["data"]["meeting_id"]["message"]
    with pytest.raises(Exception, match="a JSON number past 2"):
        pb.create("queue", {"user_id": alice.id, "meeting_id": 2**57, "status": "pending"})
    # A number that holds exactly is the recording it names
    made = queue(alice, 2**53 - 1)
    assert made.status_code == 200 and made.json()["meeting_id"] == str(2**53 - 1)
    # And form fields are text, however many digits (PocketBase makes numbers of some)
    form = {"user_id": alice.id, "meeting_id": "10000000000000000", "status": "pending"}
    posted = alice.call("POST", alice.records("queue"), data=form)
    assert posted.status_code == 200 and posted.json()["meeting_id"] == "10000000000000000"
    rows = {r["meeting_id"] for r in pb.list_all("queue")}
    assert rows == {str(2**53 - 1), "10000000000000000"}


def test_only_a_user_with_keys_that_can_work_queues(pb: PocketBase, make_user: MakeUser) -> None:
    alice = make_user("alice")
    # Without keys, a row could only fail: refused, saying what to do
    refused = queue(alice, "7")
    assert refused.status_code == 400
    assert refused.json()["message"] == "Save your Fathom and Loom keys before you queue transfers."
    # With keys the service found rejected, the same, quoting its check
    alice.save_keys()
    saved = pb.first("api_keys", filter=pb_filter("user_id = {:u}", u=alice.id))
    assert saved is not None
    rejected = "Fathom rejected the key (401): check it and save it again"
    pb.update("api_keys", saved["id"], {"fathom_check": rejected})
    refused = queue(alice, "7")
    assert refused.status_code == 400
    assert refused.json()["message"] == f"Your saved key cannot be used ({rejected})."
    # While keys still being checked, or accepted, let the row in
    pb.update("api_keys", saved["id"], {"fathom_check": "checking…"})
    assert queue(alice, "7").status_code == 200


def test_the_clis_enqueue_holds_ids_to_the_same_rule(pb: PocketBase, make_user: MakeUser) -> None:
    alice = make_user("alice")
    first = enqueue(QueueStore(pb), alice.id, ["1004"])
    # When the operator queues the same recording spelled otherwise, and one that is no id
    again = enqueue(QueueStore(pb), alice.id, ["01004", " 1004"])
    with pytest.raises(QueueRefused, match="meeting id '²' is not a Fathom recording id"):
        enqueue(QueueStore(pb), alice.id, ["1005", "²"])
    # Expect one row: the others already queued, and nothing of the refused call queued
    assert len(first.queued) == 1 and again.already_queued == ["1004", "1004"]
    assert [r["meeting_id"] for r in pb.list_all("queue")] == ["1004"]


def test_queued_at_is_the_servers_time(pb: PocketBase, make_user: MakeUser) -> None:
    alice = make_user("alice")
    alice.save_keys()
    # When a user sends a place in line from long ago
    made = queue(alice, "5", queued_at="2001-01-01 00:00:00.000Z")
    # Expect the server's time instead
    assert made.status_code == 200
    queued = parse_date(pb.get("queue", made.json()["id"])["queued_at"])
    assert queued is not None and abs(queued - datetime.now(UTC)) < timedelta(minutes=1)


# -- the operator's limits ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPocketBase]:
    """A PocketBase whose operator set small limits and wants verified accounts."""
    server = start_pocketbase(tmp_path_factory.mktemp("limited"), env=LIMITS)
    settings = make_settings(server.url, "redis://127.0.0.1:9")
    with PocketBase.from_settings(settings) as pb:
        bootstrap(settings, pb)
    yield server
    server.stop()


@pytest.fixture
def account(limited: LocalPocketBase) -> Iterator[Callable[..., UserSession]]:
    clients: list[httpx.Client] = []
    admin = PocketBase(limited.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    made = 0

    def factory(verified: bool = True, keys: bool = True) -> UserSession:
        nonlocal made
        made += 1
        email, password = f"user{made}-{id(clients)}@limits.test", "password-123456"
        body = {"email": email, "password": password, "passwordConfirm": password}
        user = admin.create("users", {**body, "verified": verified})
        http = httpx.Client(base_url=limited.url, timeout=20)
        login = http.post(
            "/api/collections/users/auth-with-password",
            json={"identity": email, "password": password},
        )
        http.headers["Authorization"] = login.json()["token"]
        clients.append(http)
        session = UserSession(user["id"], email, http)
        if verified and keys:
            session.save_keys()
        return session

    yield factory
    for client in clients:
        client.close()
    admin.close()


def test_only_verified_accounts_save_keys_and_queue(account: Callable[..., UserSession]) -> None:
    stranger = account(verified=False)
    keys = {"user_id": stranger.id, "encrypted_fathom": "fathom-key-0123456789"}
    # When an account nobody verified saves keys or queues a meeting
    saved = stranger.call("POST", stranger.records("api_keys"), json=keys)
    queued = queue(stranger, "7")
    # Expect each refused, saying what to do
    for refused in (saved, queued):
        assert refused.status_code == 403
        assert refused.json()["message"].startswith("Verify your e-mail address first")
    # While a verified account may do both
    member = account(keys=False)
    keys["user_id"] = member.id
    keys["encrypted_loom"] = "loom-key-0123456789"
    assert member.call("POST", member.records("api_keys"), json=keys).status_code == 200
    assert queue(member, "7").status_code == 200


def test_an_account_has_at_most_its_share_of_active_rows(
    limited: LocalPocketBase, account: Callable[..., UserSession]
) -> None:
    flooder = account()
    # When an account sends 40 rows at once
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda n: queue(flooder, str(n)), range(40)))
    # Expect exactly its cap taken, the rest refused with 429 and why
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 5 and statuses.count(429) == 35, statuses
    refusal = next(a for a in answers if a.status_code == 429).json()["message"]
    assert refusal.startswith("You have 5 transfers queued or running, the most one account")
    # And a finished row frees a place; a retry needs one too
    admin = PocketBase(limited.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    rows = [a.json()["id"] for a in answers if a.status_code == 200]
    admin.update("queue", rows[0], {"status": "failed"})
    assert queue(flooder, "100").status_code == 200
    retry = flooder.call("PATCH", flooder.records("queue", rows[0]), json={"status": "pending"})
    assert retry.status_code == 429
    admin.update("queue", rows[1], {"status": "completed"})
    retry = flooder.call("PATCH", flooder.records("queue", rows[0]), json={"status": "pending"})
    assert retry.status_code == 200
    admin.close()


def test_a_retried_row_goes_to_the_back_of_the_line(
    limited: LocalPocketBase, account: Callable[..., UserSession]
) -> None:
    member = account()
    admin = PocketBase(limited.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    # Given a row that failed long ago
    body = {"user_id": member.id, "meeting_id": "77", "status": "failed"}
    old = admin.create("queue", {**body, "queued_at": "2001-01-01 00:00:00.000Z"})
    # When the user retries it, expect it queued now, behind what was queued since
    retried = member.call("PATCH", member.records("queue", old["id"]), json={"status": "pending"})
    assert retried.status_code == 200, retried.text
    queued = parse_date(admin.get("queue", old["id"])["queued_at"])
    assert queued is not None and abs(queued - datetime.now(UTC)) < timedelta(minutes=1)
    admin.close()


def test_auto_move_queues_a_backlog_no_faster_than_the_cap(
    limited: LocalPocketBase,
    account: Callable[..., UserSession],
    fathom_standin: FathomStandin,
    redis_server: LocalRedis,
    redis_client: Any,
) -> None:
    member = account()
    admin = PocketBase(limited.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    box = KeyBox(bytes.fromhex(ENCRYPTION_KEY))
    # Given a user who turned auto-move on from a date far back, with 8 meetings since then
    key = f"fathom-backlog-{member.id}"
    fathom_standin.add_key(key, owner_email=member.email)
    store_keys(admin, box, member.id, fathom=key, loom=None)
    since = datetime.now(UTC) - timedelta(days=6)
    for n in range(8):
        fathom_standin.add_meeting(key, 8800 + n, created_at=since + timedelta(hours=n + 1))
    meta = {"user_id": member.id, "auto_move": True, "auto_move_since": pb_date(since)}
    assert member.call("POST", member.records("user_meta"), json=meta).status_code == 200
    settings = make_settings(limited.url, redis_server.url, fathom_base_url=fathom_standin.url)
    providers = Providers.from_settings(settings, redis_client)
    store, keys = AutoMoveStore(admin, box), KeyStore(admin, box)
    try:
        # When the catch-up poll runs, expect it to stop at the user's cap (5), and say why
        first = catch_up(store, keys, providers, settings)
        assert (len(first.queued), first.deferred) == (5, 1)
        # And once three of them finished, the next poll to queue three more, none twice
        for row_id in first.queued[:3]:
            admin.update("queue", row_id, {"status": "completed"})
        second = catch_up(store, keys, providers, settings)
        assert (len(second.queued), second.deferred) == (3, 0)
        meetings = [
            r["meeting_id"]
            for r in admin.list_all("queue", filter=pb_filter("user_id = {:u}", u=member.id))
        ]
        assert sorted(meetings) == [str(8800 + n) for n in range(8)]
    finally:
        providers.close()
        admin.close()


def test_an_accounts_log_records_are_small_and_few(account: Callable[..., UserSession]) -> None:
    writer = account()
    # A record over the size is refused, saying the limit
    big = note(writer, "x" * 400, metadata={"blob": "y" * 200})
    assert big.status_code == 400
    assert "at most 512 bytes of msg and metadata" in big.json()["message"]
    # And past the rate, the rest of the minute's records are refused with 429
    answers = [note(writer, f"note {n}").status_code for n in range(8)]
    assert answers == [200] * 5 + [429] * 3
    # Another account has its own allowance
    assert note(account()).status_code == 200


def test_the_log_limits_count_what_is_written(account: Callable[..., UserSession]) -> None:
    writer = account()
    # A msg of exactly the size, with no metadata, fits (an unset metadata is no bytes)
    assert note(writer, "x" * 512).status_code == 200
    assert note(writer, "x" * 513).status_code == 400
    # Records PocketBase refuses (a level it does not know) use none of the minute's allowance
    refused = [note(writer, "bad level", level="shout").status_code for _ in range(12)]
    assert refused == [400] * 12
    # While a record saved counts, even when its answer then fails (a field picker it cannot run)
    kept = {"user_id": writer.id, "level": "info", "msg": "kept", "ts": "2026-11-25 10:00:00Z"}
    failed_answers = [
        writer.call(
            "POST", writer.records("logs"), json=kept, params={"fields": "msg:excerpt(x)"}
        ).status_code
        for _ in range(6)
    ]
    assert failed_answers[:4] == [400] * 4 and failed_answers[4:] == [429] * 2
    assert note(writer, "one more").status_code == 429  # 5 a minute: the first and 4 kept
    assert len(writer.list_ids("logs", filter='msg = "kept"')) == 4


def test_a_date_pocketbase_cannot_read_is_refused_not_cleared(
    account: Callable[..., UserSession],
) -> None:
    """PocketBase stores an unreadable date as "" without a word: a PATCH of "banana" would
    quietly clear the user's auto-move date."""
    user = account()
    made = user.call(
        "POST",
        user.records("user_meta"),
        json={"user_id": user.id, "auto_move_since": "2026-11-01"},
    )
    assert made.status_code == 200, made.text
    row = user.records("user_meta", made.json()["id"])
    since = "2026-11-01 00:00:00.000Z"
    # PocketBase alone keeps none of these: each would clear the date
    dropped = ["banana", "0001-01-01 00:00:00.000Z", "2026-02-30", "2026-11-01 24:00:00Z"]
    dropped += ["2026-11-01T09:30", " 2026-11-01", "2026-11-01t09:30:00z", "99999-01-01"]
    for value in [*dropped, 20261101]:
        refused = user.call("PATCH", row, json={"auto_move_since": value})
        assert refused.status_code == 400, value
        said = refused.json()["data"]["auto_move_since"]["message"]
        assert "is not a date PocketBase can read" in said, said
    # However the collection is named, and in batch
    other_case = row.replace("/user_meta/", "/User_Meta/")
    assert user.call("PATCH", other_case, json={"auto_move_since": "soon"}).status_code == 400
    batch = {"requests": [{"method": "PATCH", "url": other_case, "body": {"auto_move_since": "?"}}]}
    assert user.call("POST", "/api/batch", json=batch).status_code == 400
    assert user.call("GET", row).json()["auto_move_since"] == since
    # What PocketBase reads is taken as it reads it: the web app's and the service's forms, a
    # date before 1970, an HTTP date; and "" clears it
    for value, stored in (
        ("2026-11-20T08:30:00.000Z", "2026-11-20 08:30:00.000Z"),
        ("2025-01-31 00:00:00Z", "2025-01-31 00:00:00.000Z"),
        ("1969-12-31", "1969-12-31 00:00:00.000Z"),
        ("Sun, 01 Nov 2026 09:30:00 GMT", "2026-11-01 09:30:00.000Z"),
        ("", ""),
    ):
        taken = user.call("PATCH", row, json={"auto_move_since": value})
        assert taken.status_code == 200 and taken.json()["auto_move_since"] == stored, taken.text


def test_a_malformed_limit_stops_bootstrap_naming_it(tmp_path: Path) -> None:
    server = start_pocketbase(tmp_path, env={"USER_MAX_ACTIVE_TRANSFERS": "lots"})
    try:
        settings = make_settings(server.url, "redis://127.0.0.1:9")
        with (
            PocketBase.from_settings(settings) as pb,
            pytest.raises(ConfigError, match="USER_MAX_ACTIVE_TRANSFERS is invalid"),
        ):
            bootstrap(settings, pb)
    finally:
        server.stop()

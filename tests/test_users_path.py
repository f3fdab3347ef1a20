"""The users' path with real PocketBase (and its hooks), Redis, a worker, a beat and the stand-ins:
keys saved through PocketBase's API, checked at once; the CLI on a busy sandbox; the meeting's
context carried to Loom."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin
from fathom2loom.api_keys import rotate_keys
from fathom2loom.errors import UndecryptableKey
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.filters import pb_filter
from tests.conftest import UserSession
from tests.pipeline import BOX, FATHOM_KEY, LOOM_KEY, MakeUser, Scenario
from tests.workers import ROOT, CeleryBeat, CeleryProcess, CeleryWorker


@pytest.fixture(scope="module")
def stack(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[CeleryProcess]]:
    logs = tmp_path_factory.mktemp("users-path")
    processes = [
        CeleryWorker(worker_env, logs / "worker.log", concurrency=2),
        CeleryBeat(worker_env, logs / "beat.log"),
    ]
    for process in processes:
        process.start()
    yield processes
    for process in processes:
        process.stop()


def save_keys(user: UserSession, fathom: str, loom: str) -> dict[str, Any]:
    body = {"user_id": user.id, "encrypted_fathom": fathom, "encrypted_loom": loom}
    response = user.call("POST", user.records("api_keys"), json=body)
    assert response.status_code == 200, response.text
    saved: dict[str, Any] = response.json()
    return saved


def wait_for(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


def test_a_user_saves_keys_through_the_api_and_a_meeting_moves(
    pb: PocketBase,
    make_user: MakeUser,
    fathom: FathomStandin,
    loom: LoomStandin,
    clean_standins: None,
    stack: list[CeleryProcess],
) -> None:
    # Given a user signed in through PocketBase's API, who saves both keys in their own record
    user = make_user("keyowner")
    fathom.add_meeting(FATHOM_KEY, 9301)
    saved = save_keys(user, FATHOM_KEY, LOOM_KEY)
    # Expect the answer (and any read back) to show hints, never the keys or their ciphertexts
    assert "encrypted_fathom" not in saved and "encrypted_loom" not in saved
    assert saved["fathom_hint"] == "…" + FATHOM_KEY[-4:]
    again = user.call("GET", user.records("api_keys", saved["id"])).json()
    assert FATHOM_KEY not in json.dumps(again) and "encrypted_loom" not in again
    # And a superuser to see ciphertext only, which the workers' key box reads back
    stored = pb.get("api_keys", saved["id"])
    assert stored["encrypted_fathom"].startswith("f2l2.") and FATHOM_KEY not in json.dumps(stored)
    plain = BOX.decrypt(stored["encrypted_fathom"], user_id=user.id, field="encrypted_fathom")
    assert plain == FATHOM_KEY
    # When the user queues the meeting through the API, it completes
    row = user.call(
        "POST",
        user.records("queue"),
        json={"user_id": user.id, "meeting_id": "9301", "status": "pending"},
    ).json()
    done = wait_for(lambda: (r := pb.get("queue", row["id"]))["status"] == "completed" and r, 45)
    assert done["loom_url"]
    # And the same ciphertext copied to another user's record, or to the other field, is refused
    other = make_user("copier")
    with pytest.raises(UndecryptableKey, match="another user or field"):
        BOX.decrypt(stored["encrypted_fathom"], user_id=other.id, field="encrypted_fathom")
    with pytest.raises(UndecryptableKey, match="another user or field"):
        BOX.decrypt(stored["encrypted_fathom"], user_id=user.id, field="encrypted_loom")


def test_a_wrong_key_is_reported_on_the_users_record_within_seconds(
    pb: PocketBase, make_user: MakeUser, stack: list[CeleryProcess]
) -> None:
    user = make_user("wrongkey")
    saved = save_keys(user, "not-a-fathom-key-at-all", LOOM_KEY)
    assert saved["fathom_check"] == "checking…"
    started = time.monotonic()

    def checked() -> Any:
        row = user.call("GET", user.records("api_keys", saved["id"])).json()
        return row if row["fathom_check"] != "checking…" else None

    row = wait_for(checked, timeout=15)
    assert row["fathom_check"] == "Fathom rejected the key (401): check it and save it again"
    assert row["loom_check"].startswith("Loom key accepted")
    assert time.monotonic() - started < 15
    # A corrected key is checked again
    fixed = user.call(
        "PATCH", user.records("api_keys", saved["id"]), json={"encrypted_fathom": FATHOM_KEY}
    ).json()
    assert fixed["fathom_check"] == "checking…"
    row = wait_for(checked, timeout=15)
    assert row["fathom_check"].startswith("Fathom key accepted")


def test_rotate_rewrites_what_the_hook_wrote(pb: PocketBase, make_user: MakeUser) -> None:
    user = make_user("rotator")
    saved = save_keys(user, FATHOM_KEY, LOOM_KEY)
    report = rotate_keys(pb, BOX)
    assert report.reencrypted == 2 and not report.undecryptable
    stored = pb.get("api_keys", saved["id"])
    assert stored["encrypted_fathom"].startswith("f2l1.")
    assert (
        BOX.decrypt(stored["encrypted_loom"], user_id=user.id, field="encrypted_loom") == LOOM_KEY
    )
    assert rotate_keys(pb, BOX).reencrypted == 0


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "fathom2loom.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_cli_on_a_busy_sandbox(
    scenario: Scenario,
    worker_env: dict[str, str],
    fathom: FathomStandin,
    loom: LoomStandin,
    stack: list[CeleryProcess],
    tmp_path: Path,
) -> None:
    env = {**worker_env, "TRANSFER_MAX_ATTEMPTS": "2"}
    email = scenario.user.email
    # Given a user whose Fathom holds six recordings, two of them older than a cut-off date
    for n, day in enumerate([1, 2, 10, 11, 12, 13]):
        fathom.add_meeting(FATHOM_KEY, 9400 + n, title=f"Weekly sync {n}", created_at=_day(day))
    fathom.set_fault("recording:9405", status=422, endpoint="POST /recordings/{id}/download")
    loom.set_fault("*", slow_patch_seconds=0.3)
    # When the operator lists them, then queues every one since the 5th
    listed = json.loads(cli(env, "meetings", email, "--json"))
    assert [m["recording_id"] for m in listed][:6] == [9405, 9404, 9403, 9402, 9401, 9400]
    assert {m["state"] for m in listed} == {"not moved"}
    out = cli(env, "enqueue", email, "--since", "2026-01-05")
    assert out.startswith("queued 4:")
    # Expect `status` to show them, `cancel` to stop one, and the 422 one to fail
    rows = json.loads(cli(env, "status", email, "--json"))
    by_meeting = {r["meeting"]: r for r in rows}
    assert set(by_meeting) == {"9402", "9403", "9404", "9405"}
    cli(env, "cancel", by_meeting["9402"]["row"])
    wait_for(
        lambda: (
            {r["meeting"]: r["status"] for r in json.loads(cli(env, "status", email, "--json"))}
            == {"9402": "cancelled", "9403": "completed", "9404": "completed", "9405": "failed"}
        ),
        timeout=60,
    )
    states = {
        m["recording_id"]: m["state"] for m in json.loads(cli(env, "meetings", email, "--json"))
    }
    assert states[9403] == "moved" and states[9400] == "not moved" and states[9405] == "failed"
    # And `retry --failed` to queue the failed one again, which now goes through
    fathom.clear_faults()
    assert cli(env, "retry", "--failed", "--user", email).startswith("retried 1:")

    def meeting_status(meeting: str) -> str:
        rows = json.loads(cli(env, "status", email, "--json"))
        return str(next(r["status"] for r in rows if r["meeting"] == meeting))

    wait_for(lambda: meeting_status("9405") == "completed", timeout=60)
    # And `enqueue --since` again to queue only what is neither queued nor moved
    again = cli(env, "enqueue", email, "--since", "2026-01-05")
    assert again.startswith("queued 1:")
    assert "already moved: 9405 9404 9403" in again


def test_the_video_carries_the_meetings_title_summary_action_items_and_link(
    scenario: Scenario, fathom: FathomStandin, loom: LoomStandin, stack: list[CeleryProcess]
) -> None:
    meeting = fathom.add_meeting(FATHOM_KEY, 9501, title="Quarterly planning with Acme")
    row = scenario.row(9501, add=False)
    done = scenario.finish(row)
    assert done["status"] == "completed", done["error_message"]
    title, description = loom.video_text(done["loom_video_id"])
    assert title == "Quarterly planning with Acme"
    assert "## Quarterly planning with Acme" in description  # Fathom's summary, as Markdown
    assert "- [ ] Send the follow-up notes" in description  # the action items
    assert f"In Fathom: {meeting['share_url']}" in description
    assert len(description) <= 5000


def _day(day: int) -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 1, day, 10, 0, tzinfo=UTC)


def test_users_add_makes_a_user_who_can_sign_in(
    pb: PocketBase, worker_env: dict[str, str], pb_server: Any
) -> None:
    import httpx

    env = {**worker_env, "FATHOM2LOOM_USER_PASSWORD": "a-long-password-1"}
    user_id = cli(env, "users", "add", "newcomer@users.test").strip()
    assert pb.get("users", user_id)["email"] == "newcomer@users.test"
    assert pb.first("user_meta", filter=f'user_id = "{user_id}"') is not None
    login = httpx.post(
        f"{pb_server.url}/api/collections/users/auth-with-password",
        json={"identity": "newcomer@users.test", "password": "a-long-password-1"},
    )
    assert login.status_code == 200


# Pasted wrong: Cyrillic letters, a header injection, a NUL, emoji, a blank inside, too long.
NOT_KEYS = ["ключ-лум", "key\r\nX-Evil: 1", "lo\x00om", "😀" * 10, "two words", "k" * 1025]


def test_a_key_no_header_can_carry_is_refused_when_saved(make_user: MakeUser) -> None:
    user = make_user("mispaste")
    for bad in NOT_KEYS:
        for field, good in (("encrypted_fathom", FATHOM_KEY), ("encrypted_loom", LOOM_KEY)):
            other = "encrypted_loom" if field == "encrypted_fathom" else "encrypted_fathom"
            body = {"user_id": user.id, field: bad, other: good}
            refused = user.call("POST", user.records("api_keys"), json=body)
            assert refused.status_code == 400, (bad, field)
            said = refused.json()["data"][field]["message"]
            assert "holds characters no API key has" in said and bad not in refused.text
    # A key pasted with a line break after it is only trimmed; changing it is held to the rule
    saved = save_keys(user, FATHOM_KEY + "\n", " " + LOOM_KEY)
    assert saved["fathom_hint"].endswith(FATHOM_KEY[-4:])
    patched = user.call(
        "PATCH", user.records("api_keys", saved["id"]), json={"encrypted_loom": NOT_KEYS[0]}
    )
    assert patched.status_code == 400 and "encrypted_loom" in patched.json()["data"]


def test_a_stored_key_no_header_can_carry_is_never_sent_nor_logged(
    pb: PocketBase, make_user: MakeUser, stack: list[CeleryProcess]
) -> None:
    """Keys stored before the hooks held them to the rule: the check says what is wrong, the
    checks of other users go on, a transfer fails at once, and no log holds the key."""
    stale = make_user("stalekey")
    pb.create(
        "api_keys",
        {
            "user_id": stale.id,
            "encrypted_fathom": BOX.encrypt(
                NOT_KEYS[0], user_id=stale.id, field="encrypted_fathom"
            ),
            "encrypted_loom": BOX.encrypt(NOT_KEYS[3], user_id=stale.id, field="encrypted_loom"),
        },
    )
    later = make_user("afterstale")
    save_keys(later, "not-a-fathom-key-either", LOOM_KEY)

    def checked(user: UserSession) -> Any:
        row = pb.first("api_keys", filter=pb_filter("user_id = {:u}", u=user.id))
        return row if row and row["fathom_check"] not in ("", "checking…") else None

    stale_row = wait_for(lambda: checked(stale), timeout=20)
    for provider in ("fathom", "loom"):
        told = stale_row[f"{provider}_check"]
        assert told.startswith(f"{provider.title()} key cannot be used: it holds characters"), told
    assert wait_for(lambda: checked(later), timeout=20)["fathom_check"].startswith(
        "Fathom rejected the key (401)"
    )
    # The user cannot queue on it; a row made for them anyway fails at once, saying what to do
    refused = stale.call(
        "POST",
        stale.records("queue"),
        json={"user_id": stale.id, "meeting_id": "9401", "status": "pending"},
    )
    assert refused.status_code == 400 and "key cannot be used" in refused.json()["message"]
    row = pb.create("queue", {"user_id": stale.id, "meeting_id": "9401", "status": "pending"})
    failed = wait_for(lambda: (r := pb.get("queue", row["id"]))["status"] == "failed" and r, 30)
    assert failed["error_message"].startswith("The saved Fathom key holds characters"), failed
    assert failed["attempts"] <= 1
    # And the key is in no log: the workers' and beat's files, PocketBase's logs collection
    logged = "\n".join(p.log_path.read_text(errors="replace") for p in stack)
    logged += json.dumps(list(pb.list_all("logs")), ensure_ascii=False)
    for key in (NOT_KEYS[0], NOT_KEYS[3]):
        assert key not in logged

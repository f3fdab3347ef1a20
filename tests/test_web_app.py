"""The web app (pb_public/), used the way a person uses it: Debian's Chromium, headless, driven by
Playwright, against the real stack (PocketBase serving the page and its API, Redis, a Celery
worker and beat, the service's HTTP process, the Fathom and Loom stand-ins). Each step leaves a
screenshot in test-artifacts/web/.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devkit.local_servers import LocalRedis
from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin
from fathom2loom.bootstrap import bootstrap
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.settings import DEFAULT_PUBLIC_DIR
from tests.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    ENCRYPTION_KEY,
    make_settings,
    start_pocketbase,
)
from tests.pipeline import Receiver
from tests.workers import ROOT, CeleryBeat, CeleryProcess, CeleryWorker

ARTIFACTS = ROOT / "test-artifacts" / "web"
FATHOM_KEY = "fathom-web-key-0123456789"
LOOM_KEY = "loom-web-key-9876543210"
# What the probe of this machine kind found Chromium needs: no sandbox as root, no GPU, and no
# background connections to a network it cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MEETINGS = {4001: "Weekly planning", 4002: "Customer call: Acme", 4003: "Design review"}
SLOW = 30_000  # ms: what may take a few syncs and a transfer


@dataclass
class WebStack:
    url: str
    service_url: str
    pb: PocketBase
    fathom: FathomStandin
    loom: LoomStandin


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    root = tmp_path_factory.mktemp("web")
    fathom = FathomStandin(page_size=10, bandwidth=1_000_000).start()
    fathom.add_key(FATHOM_KEY)
    start = datetime.now(UTC) - timedelta(days=3)
    for n, (recording, title) in enumerate(MEETINGS.items()):
        fathom.add_meeting(
            FATHOM_KEY, recording, size=8_000_000, title=title, created_at=start + timedelta(days=n)
        )
    loom = LoomStandin(storage_dir=root / "loom", local_share_links=True).start()
    redis = LocalRedis(root / "redis").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PB_", "REDIS_"))}
    receiver = Receiver(env, root / "service.log")
    pocketbase = start_pocketbase(
        root,
        env={"FATHOM2LOOM_SERVICE_URL": receiver.url},
        public_dir=DEFAULT_PUBLIC_DIR,
    )
    settings = make_settings(pocketbase.url, redis.url)
    env.update(
        PB_URL=pocketbase.url,
        PB_ADMIN_EMAIL=ADMIN_EMAIL,
        PB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        PB_ENCRYPTION_KEY=ENCRYPTION_KEY,
        REDIS_URL=redis.url,
        FATHOM_BASE_URL=fathom.url,
        LOOM_BASE_URL=loom.url,
        FATHOM_POLL_INITIAL_SECONDS="0.2",
        FATHOM_POLL_MAX_SECONDS="1",
        LOOM_POLL_INITIAL_SECONDS="0.2",
        TRANSFER_PROGRESS_INTERVAL_SECONDS="0.3",
        LOOM_CHUNK_BYTES=str(256 * 1024),  # progress is told chunk by chunk
        TRANSFER_RETRY_BASE_SECONDS="0.3",
        TRANSFER_RETRY_MAX_SECONDS="1",
        SYNC_INTERVAL_SECONDS="1",
        LOG_FLUSH_INTERVAL_SECONDS="1",
        AUTO_MOVE_RECONCILE_SECONDS="2",
    )
    receiver.env.update(env)
    processes: list[CeleryProcess | Receiver] = []
    pb = PocketBase.from_settings(settings)
    try:
        bootstrap(settings, pb)
        processes.append(receiver.start())
        processes.append(CeleryWorker(env, root / "worker.log", concurrency=1).start())
        processes.append(CeleryBeat(env, root / "beat.log").start())
        yield WebStack(pocketbase.url, receiver.url, pb, fathom, loom)
    finally:
        for process in reversed(processes):
            process.stop()
        pb.close()
        pocketbase.stop()
        redis.stop()
        loom.stop()
        fathom.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("the web app is tested in Debian's Chromium: apt-get install chromium")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Story:
    """A person at the page, whose every step is kept as a screenshot."""

    def __init__(self, page: Page, name: str) -> None:
        self.page, self.name, self.steps = page, name, 0

    def shot(self, what: str) -> None:
        self.steps += 1
        self.page.screenshot(
            path=ARTIFACTS / f"{self.name}-{self.steps:02d}-{what}.png", full_page=True
        )

    def sign_up(self, email: str) -> None:
        page = self.page
        form = page.locator("#sign-up-form")
        form.get_by_label("E-mail").fill(email)
        form.get_by_label("Password (at least 8 characters)").fill("a-good-password-1")
        form.get_by_label("Password again").fill("a-good-password-1")
        form.get_by_role("button", name="Create account").click()
        expect(page.locator("#who")).to_have_text(email)

    def job(self, meeting: int | str) -> Any:
        return self.page.locator(f'#queue li[data-meeting="{meeting}"]').first


def test_a_new_user_moves_meetings_from_the_page(web: WebStack, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    story = Story(page, "new-user")
    # Given a new visitor
    page.goto(web.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    story.shot("signed-out")
    # When they sign up, expect to be signed in, with nothing queued and no keys
    story.sign_up("ada@web.test")
    page.evaluate("window.__samePage = true")  # gone if anything reloads the page
    expect(page.locator("#queue-empty")).to_be_visible()
    expect(page.locator("#fathom-state")).to_have_text("Not saved yet")
    story.shot("signed-up")
    # When they paste what no key is (letters of another script), expect the server's reason
    page.get_by_label("Fathom API key").fill("ключ фатома")
    page.get_by_label("Loom key").fill(LOOM_KEY)
    page.get_by_role("button", name="Save keys").click()
    expect(page.locator("#keys-error")).to_contain_text(
        "The Fathom key holds characters no API key has"
    )
    expect(page.locator("#fathom-state")).to_have_text("Not saved yet")
    story.shot("not-a-key-refused")
    # When they save a wrong Fathom key, expect the check to say so within seconds
    page.get_by_label("Fathom API key").fill("not-my-fathom-key-123")
    page.get_by_label("Loom key").fill(LOOM_KEY)
    page.get_by_role("button", name="Save keys").click()
    expect(page.get_by_label("Fathom API key")).to_have_value("")  # never kept in the page
    expect(page.locator("#fathom-state")).to_contain_text(
        "Fathom rejected the key (401)", timeout=SLOW
    )
    expect(page.locator("#fathom-state")).to_contain_text("Saved …-123")
    expect(page.locator("#loom-state")).to_contain_text("Loom key accepted", timeout=SLOW)
    story.shot("wrong-key-rejected")
    # And the right one accepted
    page.get_by_label("Fathom API key").fill(FATHOM_KEY)
    page.get_by_role("button", name="Save keys").click()
    expect(page.locator("#fathom-state")).to_contain_text("Fathom key accepted", timeout=SLOW)
    story.shot("right-key-accepted")
    # And no key anywhere in the page or its storage, only PocketBase's auth token
    kept = page.evaluate("document.documentElement.outerHTML + JSON.stringify(localStorage)")
    for key in (FATHOM_KEY, LOOM_KEY, "not-my-fathom-key-123"):
        assert key not in kept
    assert page.evaluate("Object.keys(localStorage)") == ["pocketbase_auth"]
    # When they turn auto-move on, expect the service's word on it; off again, "Off"
    page.get_by_label("Move each new meeting by itself").check()
    expect(page.locator("#auto-status")).to_contain_text("On: new meetings are found", timeout=SLOW)
    story.shot("auto-move-on")
    page.get_by_label("Move each new meeting by itself").uncheck()
    expect(page.locator("#auto-status")).to_have_text("Off: you choose which meetings move.")
    # When they list their meetings, expect them newest first, none moved
    page.get_by_role("button", name="Show my meetings").click()
    titles = page.locator("#meetings .meeting-title")
    expect(titles).to_have_text(list(reversed(MEETINGS.values())), timeout=SLOW)
    expect(page.locator("#meetings .badge")).to_have_text(["not moved"] * 3)
    # And they pick two and move them
    page.get_by_role("checkbox", name=re.compile("Weekly planning")).check()
    page.get_by_role("checkbox", name=re.compile("Customer call: Acme")).check()
    page.get_by_role("button", name="Move selected (2)").click()
    expect(page.locator("#meetings-status")).to_have_text("Queued 2 meetings.")
    story.shot("two-queued")
    # Expect one moving with its progress growing, the other waiting its turn, live
    expect(page.locator("#queue li.status-processing")).to_have_count(1, timeout=SLOW)
    moving_id = int(page.locator("#queue li.status-processing").get_attribute("data-meeting") or 0)
    waiting_id = 4001 if moving_id == 4002 else 4002
    moving, waiting = story.job(moving_id), story.job(waiting_id)
    expect(waiting.locator(".position")).to_have_text("#1 in line", timeout=SLOW)
    # (with the keyboard's focus on the waiting one's Cancel, which updates must not take away)
    waiting.get_by_role("button", name=f"Cancel {MEETINGS[waiting_id]}").focus()
    progress = moving.locator("progress")
    expect(progress).to_have_attribute("value", re.compile(r"^[1-9]\d*$"), timeout=SLOW)
    seen = int(progress.get_attribute("value") or 0)
    expect(progress).not_to_have_attribute("value", str(seen), timeout=SLOW)
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == f"Cancel {MEETINGS[waiting_id]}"
    story.shot("moving-and-waiting")
    # When they cancel the one moving, from the keyboard
    moving.get_by_role("button", name=f"Cancel {MEETINGS[moving_id]}").focus()
    page.keyboard.press("Enter")
    expect(moving.locator(".badge")).to_have_text("Cancelled", timeout=SLOW)
    # Expect the other to leave the line, move, and arrive in Loom
    expect(waiting.locator(".position")).to_be_hidden(timeout=SLOW)
    expect(waiting.locator(".badge")).to_have_text("In Loom", timeout=60_000)
    states = {4003: "not moved", moving_id: "cancelled", waiting_id: "moved"}
    expect(page.locator("#meetings .badge")).to_have_text([states[m] for m in (4003, 4002, 4001)])
    story.shot("cancelled-and-moved")
    # And its Loom link opens the video
    with page.expect_popup() as opened:
        waiting.get_by_role("link", name="Open in Loom").click()
    loom_page = opened.value
    loom_page.wait_for_load_state()
    assert loom_page.url.startswith(web.loom.url + "/share/")
    expect(loom_page.get_by_role("heading", name=MEETINGS[waiting_id])).to_be_visible()
    Story(loom_page, "new-user-loom").shot("video")
    loom_page.close()
    # When a meeting fails (Fathom cannot render it), expect what went wrong and a retry
    web.fathom.set_fault("recording:4003", render_failure="generation_failed")
    page.get_by_role("checkbox", name=re.compile("Design review")).check()
    page.get_by_role("button", name="Move selected (1)").click()
    failed = story.job(4003)
    expect(failed.locator(".badge")).to_have_text("Failed", timeout=60_000)
    expect(failed.locator(".job-error")).to_contain_text("Fathom could not prepare the video")
    # And once the meeting is queued again, the old row's retry refused with the server's words
    web.fathom.clear_faults()
    web.fathom.set_fault("recording:4003", render_seconds=120.0)
    page.get_by_role("checkbox", name=re.compile("Design review")).check()
    page.get_by_role("button", name="Move selected (1)").click()
    expect(page.locator('#queue li[data-meeting="4003"]')).to_have_count(2)
    old = page.locator('#queue li[data-meeting="4003"].status-failed')
    old.get_by_role("button", name="Retry Design review").click()
    expect(old.locator(".error")).to_contain_text(
        "This meeting is queued again already", timeout=SLOW
    )
    story.shot("retry-refused")
    assert page.evaluate("window.__samePage") is True  # all of it without a reload
    context.close()


def test_another_user_sees_none_of_it(web: WebStack, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    page = context.new_page()
    story = Story(page, "second-user")
    page.goto(web.url + "/")
    story.sign_up("grace@web.test")
    # Expect no transfer, no key, no meeting of the first user's
    expect(page.locator("#queue-empty")).to_be_visible()
    expect(page.locator("#queue li")).to_have_count(0)
    expect(page.locator("#fathom-state")).to_have_text("Not saved yet")
    page.get_by_role("button", name="Show my meetings").click()
    expect(page.locator("#meetings-status")).to_have_text(
        "Save your Fathom key first: the meetings are listed with it"
    )
    expect(page.locator("#meetings li")).to_have_count(0)
    story.shot("nothing-of-ada")
    # And signing out leaves the sign-in form, and nothing of theirs in the page's storage
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("Object.keys(localStorage)") == []
    context.close()


def test_the_next_account_in_the_same_tab_inherits_nothing(web: WebStack, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(web.url + "/")
    story = Story(page, "same-tab")
    # Given one account that typed a key it did not save, and picked a date, then signed out
    story.sign_up("first@web.test")
    page.get_by_label("Fathom API key").fill("typed-but-never-saved-123")
    page.get_by_label("Everything since").fill("2026-01-05")
    page.get_by_role("button", name="Sign out").click()
    # When another account signs up in the same tab
    story.sign_up("next@web.test")
    # Expect empty fields, and nothing saved for it by a click on Save
    expect(page.get_by_label("Fathom API key")).to_have_value("")
    expect(page.get_by_label("Everything since")).to_have_value("")
    page.get_by_role("button", name="Save keys").click()
    expect(page.locator("#keys-error")).to_have_text("Paste a key first.")
    who = web.pb.first("users", filter=pb_filter("email = {:e}", e="next@web.test"))
    assert who is not None
    assert web.pb.first("api_keys", filter=pb_filter("user_id = {:u}", u=who["id"])) is None
    story.shot("clean")
    page.close()


def test_where_accounts_must_be_verified_the_page_leads_the_way(
    tmp_path: Path, browser: Browser
) -> None:
    # Given a server where only verified accounts may save keys and queue
    server = start_pocketbase(
        tmp_path, env={"REQUIRE_VERIFIED_USERS": "true"}, public_dir=DEFAULT_PUBLIC_DIR
    )
    admin = PocketBase(server.url, ADMIN_EMAIL, ADMIN_PASSWORD)
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        story = Story(page, "verify")
        # When a new account signs up, expect the page to ask for the e-mail's link
        story.sign_up("new@verify.test")
        expect(page.locator("#verify")).to_be_visible()
        expect(page.locator("#verify-email")).to_have_text("new@verify.test")
        # And a key it saves meanwhile to be refused, saying why
        page.get_by_label("Fathom API key").fill("fathom-key-0123456789")
        page.get_by_role("button", name="Save keys").click()
        expect(page.locator("#keys-error")).to_contain_text("Verify your e-mail address first")
        story.shot("asked-to-verify")
        # When the account is verified (here by the operator) and the user says so
        user = admin.first("users", filter=pb_filter("email = {:e}", e="new@verify.test"))
        assert user is not None
        admin.update("users", user["id"], {"verified": True})
        page.get_by_role("button", name="I have verified it").click()
        # Expect the banner gone, and the key saved
        expect(page.locator("#verify")).to_be_hidden()
        page.get_by_label("Fathom API key").fill("fathom-key-0123456789")
        page.get_by_role("button", name="Save keys").click()
        expect(page.locator("#fathom-state")).to_contain_text("Saved …6789")
        story.shot("verified")
    finally:
        page.close()
        admin.close()
        server.stop()


def test_an_account_signs_in_again_and_finds_its_transfers(web: WebStack, browser: Browser) -> None:
    # Given an account made earlier (by the first story, or here when run alone)
    email, password = "ada@web.test", "a-good-password-1"
    user = web.pb.first("users", filter=pb_filter("email = {:e}", e=email))
    if user is None:
        body = {"email": email, "password": password, "passwordConfirm": password}
        user = web.pb.create("users", body)
    rows = list(web.pb.list_all("queue", filter=pb_filter("user_id = {:u}", u=user["id"])))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(web.url + "/")
    # When it signs in, with a wrong password first
    form = page.locator("#sign-in-form")
    form.get_by_label("E-mail").fill("ada@web.test")
    form.get_by_label("Password").fill("not-the-password")
    form.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text(
        "That e-mail and password do not match an account."
    )
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Sign in").click()
    # Expect its transfers, as it left them
    expect(page.locator("#who")).to_have_text(email)
    expect(page.locator("#queue li")).to_have_count(len(rows), timeout=SLOW)
    Story(page, "returning-user").shot("signed-in")
    context.close()


def test_where_the_operator_closed_sign_up_the_page_says_so(
    web: WebStack, browser: Browser
) -> None:
    users = web.pb.request("GET", "/api/collections/users")
    web.pb.request("PATCH", "/api/collections/users", json={"createRule": None})
    try:
        page = browser.new_page()
        page.goto(web.url + "/")
        expect(page.locator("#sign-up-closed")).to_be_visible()
        expect(page.locator("#sign-up-form")).to_be_hidden()
        Story(page, "closed-sign-up").shot("page")
        page.close()
    finally:
        web.pb.request("PATCH", "/api/collections/users", json={"createRule": users["createRule"]})


def test_the_meetings_route_of_the_service_is_for_pocketbase_alone(web: WebStack) -> None:
    # Given someone who found the service's internal route, without PocketBase's token
    some_user = web.pb.first("users", filter="id != ''")
    assert some_user is not None
    url = f"{web.service_url}/internal/meetings/{some_user['id']}"
    # Expect a 401 and nothing about the user
    for headers in ({}, {"Authorization": "Bearer guessed"}):
        answer = httpx.get(url, headers=headers, timeout=10)
        assert answer.status_code == 401 and "items" not in answer.json()
    # And the page's own route needs a signed-in user
    assert httpx.get(f"{web.url}/api/fathom2loom/meetings", timeout=10).status_code == 401

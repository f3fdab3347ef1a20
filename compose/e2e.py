"""`make compose-test`: the compose stack, for real, end to end, with the sandbox profile.

Run on the host, with Docker and docker-compose ready (`make compose-test` prepares them). It
brings up docker-compose.yml with three workers and the sandbox, then checks what an operator
relies on:

1. the sandbox's meetings reach `completed`;
2. scaling the workers down to one in the middle of the transfers loses no row and makes no
   second Loom video, and every row a stopped worker held resumes within 15 s;
3. a user's keys saved through PocketBase's API are stored encrypted (the hooks run in
   `pb_global`) and checked against the stand-ins;
4. auto-move: a meeting that ends at the Fathom stand-in reaches the `webhooks` container through
   the demo user's signed webhook (delivered twice) and is moved once;
5. the seed's `./pocketbase migrate` and `migrate down` work in `pb_global`;
6. Flower answers 401 without credentials, and with them shows no password or key;
7. `docker-compose logs` of every service holds no API key, signed URL or password.

Secrets are generated for the run and passed to compose through the environment; everything is
torn down (volumes included) at the end, also on failure. Each run is a compose project of its own,
so whatever an interrupted earlier run left behind is neither reused nor touched.

    .venv/bin/python compose/e2e.py
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# A project of its own for each run: containers or volumes that an interrupted earlier run left
# behind (with other secrets) are never recreated into this one, and never touched.
PROJECT = f"f2l-e2e-{secrets.token_hex(4)}"
SANDBOX_KEYS = ("sandbox-fathom-key", "sandbox-loom-key")
DEMO_EMAIL = "demo@fathom2loom.local"
DEMO_PASSWORD = "demo-password-123"  # devkit/sandbox.py


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


class Stack:
    def __init__(self) -> None:
        self.flower_password = secrets.token_urlsafe(16)
        self.env = {
            **os.environ,
            "PB_ADMIN_EMAIL": "admin@e2e.test",
            "PB_ADMIN_PASSWORD": secrets.token_urlsafe(18),
            "PB_ENCRYPTION_KEY": secrets.token_hex(32),
            "REDIS_PASSWORD": secrets.token_urlsafe(18),
            "FLOWER_BASIC_AUTH": f"ops:{self.flower_password}",
            "WORKER_CONCURRENCY": "5",  # One worker alone can take every row back.
            "PB_PORT": str(free_port()),
            "FLOWER_PORT": str(free_port()),
            "SANDBOX_FATHOM_PORT": str(free_port()),
            "SANDBOX_LOOM_PORT": str(free_port()),
            "WEBHOOK_PORT": str(free_port()),
        }
        self.secrets = [
            self.env[name] for name in ("PB_ADMIN_PASSWORD", "PB_ENCRYPTION_KEY", "REDIS_PASSWORD")
        ] + [self.flower_password, *SANDBOX_KEYS]

    def compose(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        command = ["docker-compose", "-p", PROJECT, "--profile", "sandbox", *args]
        done = subprocess.run(
            command, cwd=ROOT, env=self.env, input=stdin, capture_output=True, text=True
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout + done.stderr

    def url(self, port_variable: str) -> str:
        return f"http://127.0.0.1:{self.env[port_variable]}"


class PocketBaseView:
    """The superuser's view of PocketBase through its published port."""

    def __init__(self, stack: Stack) -> None:
        self.http = httpx.Client(base_url=stack.url("PB_PORT"), timeout=10)
        login = self.http.post(
            "/api/collections/_superusers/auth-with-password",
            json={
                "identity": stack.env["PB_ADMIN_EMAIL"],
                "password": stack.env["PB_ADMIN_PASSWORD"],
            },
        )
        login.raise_for_status()
        self.http.headers["Authorization"] = login.json()["token"]

    def demo_rows(self) -> list[dict[str, Any]]:
        users = self.http.get(
            "/api/collections/users/records", params={"filter": f'email = "{DEMO_EMAIL}"'}
        ).json()["items"]
        if not users:
            return []
        found = self.http.get(
            "/api/collections/queue/records",
            params={"filter": f'user_id = "{users[0]["id"]}"', "perPage": 50, "sort": "meeting_id"},
        )
        items: list[dict[str, Any]] = found.json()["items"]
        return items


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def holders(stack: Stack) -> dict[str, str]:
    """Which worker container last started uploading each row (from the workers' own logs)."""
    found: dict[str, str] = {}
    for line in stack.compose("logs", "--no-color", "worker").splitlines():
        match = re.match(r"(\S+)\s+\|.* transfer (\w+): uploading to Loom", line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


def check_scale_down(stack: Stack, pb: PocketBaseView) -> None:
    """Scale 3 workers down to 1 while the two that stop hold uploads: their rows go on."""
    say("waiting for uploads under way on the workers that will stop")

    def under_way_on_stopping_workers() -> dict[str, dict[str, Any]]:
        held = holders(stack)
        return {
            r["id"]: r
            for r in pb.demo_rows()
            if r["status"] == "processing"
            and 0 < (r["bytes_done"] or 0) < (r["bytes_total"] or 1)
            and held.get(r["id"], "").startswith(("worker_2", "worker_3"))
        }

    moving = wait_for("an upload on worker 2 or 3", under_way_on_stopping_workers, timeout=240)
    say(f"scaling down to one worker; {len(moving)} uploads under way on the two that stop")
    stopped_at = time.monotonic()
    stack.compose("up", "-d", "--no-recreate", "--scale", "worker=1", "worker")
    say(f"two workers stopped in {time.monotonic() - stopped_at:.1f} s")

    def went_on(row_id: str) -> bool:
        row = next(r for r in pb.demo_rows() if r["id"] == row_id)
        return row["status"] == "completed" or (
            not row["wait_reason"] and (row["bytes_done"] or 0) > moving[row_id]["bytes_done"]
        )

    for row_id, row in moving.items():
        left = 15 - (time.monotonic() - stopped_at)
        wait_for(f"meeting {row['meeting_id']} to go on", partial(went_on, row_id), left, 0.2)
        after = time.monotonic() - stopped_at
        say(f"meeting {row['meeting_id']} went on {after:.1f} s after the stop")
    for row in pb.demo_rows():
        assert row["status"] in ("pending", "processing", "completed"), row


def check_completed_once(stack: Stack, pb: PocketBaseView) -> None:
    rows = wait_for(
        "all demo rows completed",
        lambda: (rows := pb.demo_rows()) and all(r["status"] == "completed" for r in rows) and rows,
        timeout=300,
        every=1,
    )
    assert len(rows) == 5, rows
    stats = httpx.get(f"{stack.url('SANDBOX_LOOM_PORT')}/_standin/stats", timeout=10).json()
    made = stats["videos_created_by_key"]
    assert len(made) == 5 and set(made.values()) == {1}, made
    assert {r["loom_video_id"] for r in rows} == {v["id"] for v in stats["videos"]}
    say("all 5 sandbox meetings completed, one Loom video each")


def check_users_keys(stack: Stack, pb: PocketBaseView) -> None:
    """A user saves keys through the API: PocketBase's hook stores ciphertext, the check runs."""
    base = stack.url("PB_PORT")
    password = secrets.token_urlsafe(12)
    user = httpx.post(
        f"{base}/api/collections/users/records",
        json={"email": "keys@e2e.test", "password": password, "passwordConfirm": password},
    ).json()
    token = httpx.post(
        f"{base}/api/collections/users/auth-with-password",
        json={"identity": "keys@e2e.test", "password": password},
    ).json()["token"]

    def save() -> httpx.Response:
        return httpx.post(
            f"{base}/api/collections/api_keys/records",
            headers={"Authorization": token},
            json={
                "user_id": user["id"],
                "encrypted_fathom": SANDBOX_KEYS[0],
                "encrypted_loom": "x" * 12,
            },
        )

    # Production compose lets only verified accounts save keys (REQUIRE_VERIFIED_USERS)
    refused = save()
    assert refused.status_code == 403, refused.text
    assert refused.json()["message"].startswith("Verify your e-mail address first"), refused.text
    pb.http.patch(f"/api/collections/users/records/{user['id']}", json={"verified": True})
    saved = save()
    assert saved.status_code == 200 and "encrypted_fathom" not in saved.json(), saved.text
    record = pb.http.get(f"/api/collections/api_keys/records/{saved.json()['id']}").json()
    assert record["encrypted_fathom"].startswith("f2l2."), record
    checked = wait_for(
        "the key check",
        lambda: (
            (r := pb.http.get(f"/api/collections/api_keys/records/{record['id']}").json())[
                "fathom_check"
            ].startswith("Fathom key accepted")
            and r
        ),
        timeout=60,
    )
    say(
        "an unverified account's keys refused; once verified, saved through the API as"
        f" ciphertext; {checked['fathom_check']!r}"
    )


def check_auto_move(stack: Stack, pb: PocketBaseView) -> None:
    """The demo user has auto-move on: a meeting that ends at the Fathom stand-in reaches the
    receiver's container through the webhook, signed, and is moved, once."""

    def registered() -> bool:
        rows = pb.http.get("/api/collections/auto_move/records").json()["items"]
        return any(r["webhook_id"] for r in rows)

    wait_for("the demo user's webhook", registered, timeout=90)
    finished = httpx.post(
        f"{stack.url('SANDBOX_FATHOM_PORT')}/_standin/finish",
        json={"api_key": SANDBOX_KEYS[0], "recording_id": 2001, "size": 2_000_000, "deliveries": 2},
        timeout=10,
    )
    finished.raise_for_status()
    started = time.monotonic()
    row = wait_for(
        "the new meeting moved",
        lambda: next(
            (r for r in pb.demo_rows() if r["meeting_id"] == "2001" and r["status"] == "completed"),
            None,
        ),
        timeout=120,
    )
    assert [r["meeting_id"] for r in pb.demo_rows()].count("2001") == 1
    say(
        f"auto-move: meeting 2001 arrived by webhook (delivered twice, queued once) and was"
        f" moved in {time.monotonic() - started:.0f} s: {row['loom_url']}"
    )


def check_migrations(stack: Stack) -> None:
    up = stack.compose("exec", "-T", "pb_global", "./pocketbase", "migrate")
    down = stack.compose("exec", "-T", "pb_global", "./pocketbase", "migrate", "down", stdin="y\n")
    latest = max(path.name for path in (ROOT / "pb_migrations").glob("*.js"))
    assert "Reverted" in down and latest in down, down
    again = stack.compose("exec", "-T", "pb_global", "./pocketbase", "migrate", "up")
    assert latest in again, again
    stack.compose("restart", "pb_global")  # The server reads the collections it caches again.
    say(f"./pocketbase migrate: {up.strip().splitlines()[-1]!r}; migrate down and up: ok")


def check_flower(stack: Stack) -> None:
    base = stack.url("FLOWER_PORT")
    wait_for("Flower", lambda: _answers(f"{base}/healthcheck"), timeout=60)
    for path in ("/", "/workers", "/tasks", "/api/workers", "/api/tasks"):
        assert httpx.get(f"{base}{path}", timeout=10).status_code == 401, path
    auth = ("ops", stack.flower_password)
    pages = [
        httpx.get(f"{base}{path}", auth=auth, timeout=20, follow_redirects=True)
        for path in ("/", "/workers", "/tasks", "/broker", "/api/workers?refresh=1", "/api/tasks")
    ]
    assert all(page.status_code == 200 for page in pages), [p.status_code for p in pages]
    workers = pages[4].json()
    for name in workers:
        pages.append(httpx.get(f"{base}/worker/{name}", auth=auth, timeout=20))
    text = "\n".join(page.text for page in pages)
    leaked = [s for s in stack.secrets if s in text]
    assert not leaked, f"Flower shows {len(leaked)} secret(s)"
    say(f"Flower: 401 without a login; {len(pages)} pages with it, no secret on any")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def check_logs(stack: Stack) -> None:
    logs = stack.compose("logs", "--no-color")
    leaked = [s for s in stack.secrets if s in logs]
    assert not leaked, f"the logs hold {len(leaked)} secret(s)"
    for shape in ("/_files/", "X-Amz-", "HTTP Request:"):
        assert shape not in logs, f"the logs hold {shape!r}"
    for warning in ("without fathom2loom's hooks", "no bulk route"):
        assert warning not in logs, f"PocketBase runs without the project's routes: {warning!r}"
    say(
        f"docker-compose logs: {len(logs.splitlines())} lines, no key, password or signed URL;"
        " the hooks and bulk routes answered"
    )


def check_web_app(stack: Stack) -> None:
    """PocketBase serves the web app at /, and its meetings list reaches the service's HTTP
    process over the compose network for a signed-in user."""
    base = stack.url("PB_PORT")
    page = httpx.get(f"{base}/", timeout=10)
    assert page.status_code == 200 and "fathom2loom" in page.text, page.text[:300]
    for asset in ("/js/app.js", "/app.css", "/vendor/pocketbase.es.mjs"):
        assert httpx.get(f"{base}{asset}", timeout=10).status_code == 200, asset
    token = httpx.post(
        f"{base}/api/collections/users/auth-with-password",
        json={"identity": DEMO_EMAIL, "password": DEMO_PASSWORD},
        timeout=10,
    ).json()["token"]
    listed = httpx.get(
        f"{base}/api/fathom2loom/meetings", headers={"Authorization": token}, timeout=60
    )
    assert listed.status_code == 200, listed.text
    states = {m["recording_id"]: m["state"] for m in listed.json()["items"]}
    assert {"1001", "1002", "1003", "1004", "1005"} <= set(states), states
    say(f"the web app is served at /, and lists the demo user's meetings: {states}")


def main() -> int:
    # A CI runner that stops this script sends SIGTERM: end through `finally`, so the stack is
    # torn down rather than left running with this run's secrets and volumes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    stack = Stack()
    started = time.monotonic()
    try:
        say("building and starting the stack (sandbox profile, 3 workers)")
        stack.compose("build")
        stack.compose("up", "-d", "--scale", "worker=3")
        pb = wait_for("PocketBase", lambda: _login(stack), timeout=120)
        check_scale_down(stack, pb)
        check_completed_once(stack, pb)
        check_users_keys(stack, pb)
        check_auto_move(stack, pb)
        check_web_app(stack)
        check_migrations(stack)
        check_flower(stack)
        check_logs(stack)
        say(f"compose end to end: passed in {time.monotonic() - started:.0f} s")
        return 0
    except Exception:
        print(stack.compose("ps", check=False), file=sys.stderr)
        print(
            stack.compose("logs", "--no-color", "--tail=60", check=False)[-20000:], file=sys.stderr
        )
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the teardown
        stack.compose("down", "-v", "--remove-orphans", check=False)


def _login(stack: Stack) -> PocketBaseView | None:
    try:
        return PocketBaseView(stack)
    except httpx.HTTPError:
        return None


if __name__ == "__main__":
    sys.exit(main())

"""Scaffolding for tests of the whole pipeline: stand-ins, worker settings, queue scenarios.

Registered as a pytest plugin by `tests/conftest.py`; the stand-ins are module-scoped.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from celery import Celery

from devkit.local_servers import LocalRedis, free_port, stop_process_group
from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin
from fathom2loom.api_keys import store_keys
from fathom2loom.inflight import InFlight
from fathom2loom.keybox import KeyBox
from fathom2loom.pocketbase.client import PocketBase, Record
from fathom2loom.pocketbase.dates import now_iso
from fathom2loom.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, ENCRYPTION_KEY, UserSession
from tests.workers import ROOT, CeleryProcess, CeleryWorker

MakeUser = Callable[[str], UserSession]
MIB = 1024 * 1024
FATHOM_KEY = "fathom-transfer-key-abcdef"
LOOM_KEY = "loom-transfer-key-ghijkl"
BOX = KeyBox(bytes.fromhex(ENCRYPTION_KEY))
FINAL = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def fathom() -> Iterator[FathomStandin]:
    standin = FathomStandin(page_size=5).start()
    standin.add_key(FATHOM_KEY)
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def loom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomStandin]:
    standin = LoomStandin(storage_dir=tmp_path_factory.mktemp("loom")).start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def worker_env(
    settings: Settings, redis_server: LocalRedis, fathom: FathomStandin, loom: LoomStandin
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PB_", "REDIS_"))}
    env.update(
        PB_URL=settings.pb_url,
        PB_ADMIN_EMAIL=ADMIN_EMAIL,
        PB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        PB_ENCRYPTION_KEY=ENCRYPTION_KEY,
        REDIS_URL=redis_server.url.replace("/0", "/1"),
        FATHOM_BASE_URL=fathom.url,
        LOOM_BASE_URL=loom.url,
        FATHOM_CALLS_PER_WINDOW="100000",
        FATHOM_HEAVY_CALLS_PER_WINDOW="100000",
        FATHOM_DOWNLOAD_REQUESTS_PER_WINDOW="100000",
        FATHOM_POLL_INITIAL_SECONDS="0.2",
        FATHOM_POLL_MAX_SECONDS="1",
        TRANSFER_PROGRESS_INTERVAL_SECONDS="0.2",
        TRANSFER_RETRY_BASE_SECONDS="0.3",
        TRANSFER_RETRY_MAX_SECONDS="1",
        TRANSFER_MAX_ATTEMPTS="4",
        PROVIDER_RETRY_BASE_SECONDS="0.05",
        TRANSFER_LEASE_SECONDS="3",
        LOOM_POLL_INITIAL_SECONDS="0.2",
        LOOM_CHUNK_BYTES=str(256 * 1024),
        SYNC_INTERVAL_SECONDS="1",
        LOG_FLUSH_INTERVAL_SECONDS="0.5",
    )
    return env


@pytest.fixture(scope="module")
def celery_client(worker_env: dict[str, str]) -> Iterator[Celery]:
    client = Celery(broker=worker_env["REDIS_URL"], backend=worker_env["REDIS_URL"])
    yield client
    client.close()


@pytest.fixture
def clean_standins(fathom: FathomStandin, loom: LoomStandin) -> None:
    fathom.reset()
    loom.reset()


class Scenario:
    """A user with stored keys, queue rows for them, and a way to watch a row."""

    def __init__(self, pb: PocketBase, user: UserSession, celery: Celery, fathom: FathomStandin):
        self.pb, self.user, self.celery, self.fathom = pb, user, celery, fathom
        store_keys(pb, BOX, user.id, fathom=FATHOM_KEY, loom=LOOM_KEY)

    def row(
        self,
        meeting_id: str | int,
        *,
        size: int = 300_000,
        add: bool = True,
        manual: bool = False,
    ) -> str:
        """A pending row; `manual` claims its in-flight marker first, so no dispatcher sends it
        and the test's own `send` is its first run (and the test holds that task's result)."""
        spelled = str(meeting_id)
        checked = re.fullmatch(r"0|[1-9][0-9]{0,17}", spelled) is not None
        if add and checked:
            self.fathom.add_meeting(FATHOM_KEY, int(meeting_id), size=size)
        row_id = secrets.token_hex(8)[:15]
        if manual:
            InFlight(self.redis).claim(row_id, 600)
        self.pb.create(
            "queue",
            {
                "id": row_id,
                "user_id": self.user.id,
                "meeting_id": spelled if checked else "0",
                "status": "pending" if checked else "cancelled",
                "queued_at": now_iso(),
            },
        )
        if not checked:  # A row from before meeting ids were checked (the hooks refuse it now).
            self.pb.update("queue", row_id, {"meeting_id": spelled, "status": "pending"})
        return row_id

    @property
    def redis(self) -> redis.Redis:
        client: redis.Redis = self.celery.backend.client  # type: ignore[attr-defined]
        return client

    def send(self, row_id: str) -> Any:
        return self.celery.send_task("fathom2loom.transfer", args=[row_id], queue="transfers")

    def wait(
        self,
        row_id: str,
        until: Callable[[Record], bool],
        timeout: float = 45,
        seen: list[str] | None = None,
    ) -> Record:
        deadline = time.monotonic() + timeout
        while True:
            row = self.pb.get("queue", row_id)
            if seen is not None and (not seen or seen[-1] != row["status"]):
                seen.append(row["status"])
            if until(row):
                return row
            if time.monotonic() > deadline:
                raise AssertionError(f"row never got there; last: {row}")
            time.sleep(0.05)

    def finish(self, row_id: str, timeout: float = 45) -> Record:
        return self.wait(row_id, lambda r: r["status"] in FINAL, timeout)

    def cancel(self, row_id: str) -> None:
        response = self.user.call(
            "PATCH", self.user.records("queue", row_id), json={"status": "cancelled"}
        )
        assert response.status_code == 200, response.text


@pytest.fixture
def scenario(
    pb: PocketBase,
    make_user: MakeUser,
    celery_client: Celery,
    fathom: FathomStandin,
    clean_standins: None,
) -> Scenario:
    return Scenario(pb, make_user(f"mover{secrets.token_hex(3)}"), celery_client, fathom)


def video_key(user_id: str, recording: int) -> str:
    """The Loom idempotency key of a user's recording (first generation)."""
    from fathom2loom.transfer.rules import idempotency_key

    return idempotency_key(user_id, recording, 0)


# -- processes ---------------------------------------------------------------------------


@pytest.fixture
def stack_env(worker_env: dict[str, str]) -> dict[str, str]:
    return {
        **worker_env,
        "SYNC_INTERVAL_SECONDS": "1",
        "DISPATCH_MAX_IN_FLIGHT": "4",
        "DISPATCH_PER_USER": "2",
    }


class Stack:
    """Workers and beats started by a test, all stopped at its end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.processes = env, logs, list[CeleryProcess]()

    def worker(self, concurrency: int = 2) -> CeleryProcess:
        log = self.logs / f"worker{len(self.processes)}.log"
        process = CeleryWorker(self.env, log, concurrency=concurrency).start()
        self.processes.append(process)
        return process

    def beat(self) -> CeleryProcess:
        log = self.logs / f"beat{len(self.processes)}.log"
        process = CeleryProcess(self.env, log, ["beat", "--loglevel", "INFO"], b"LocalTime")
        self.processes.append(process.start())
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def stack(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    made = Stack(stack_env, tmp_path)
    yield made
    made.stop()


def wait_all(scenario: Scenario, rows: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        statuses = [scenario.pb.get("queue", r)["status"] for r in rows]
        if all(s in FINAL for s in statuses):
            assert set(statuses) == {"completed"}, statuses
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not all rows finished: {statuses}")
        time.sleep(0.2)


def assert_one_video_each(loom: LoomStandin, pb: PocketBase, rows: list[str]) -> None:
    """Each row's recording made exactly one Loom video, and it is the row's."""
    created = loom.stats()["videos_created_by_key"]
    for row_id in rows:
        row = pb.get("queue", row_id)
        key = video_key(row["user_id"], int(row["meeting_id"]))
        assert created.get(key) == 1, (row_id, created)
        assert not any(k.startswith(f"{key}-g") for k in created), (row_id, created)


def spawn_cli(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`fathom2loom <args>` in its own process group, its output appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "fathom2loom.cli", *args],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class Receiver:
    """The webhook receiver (`fathom2loom webhooks`) in its own process, on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "WEBHOOK_LISTEN_PORT": str(self.port)}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> Receiver:
        self.process = spawn_cli(["webhooks"], self.env, self.log_path)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the receiver did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process_group(self.process)
        self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    """A Redis for one test alone, so that killing it touches no other test."""
    server = LocalRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def kill_redis(server: LocalRedis) -> None:
    """Kill Redis at once; it keeps nothing (no persistence), so it comes back empty."""
    assert server.process is not None
    server.process.kill()
    server.process.wait(10)


def restart_empty(server: LocalRedis, down_seconds: float) -> None:
    """Kill Redis and start it, empty, on the same port."""
    kill_redis(server)
    time.sleep(down_seconds)
    server.start()


class Flower:
    """Flower (`fathom2loom flower`) in its own process on a free port, behind `login`."""

    def __init__(self, env: dict[str, str], log_path: Path, login: tuple[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "FLOWER_BASIC_AUTH": ":".join(login)}
        self.login = login
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Flower:
        args = ["flower", f"--port={self.port}", "--address=127.0.0.1"]
        self.process = spawn_cli(args, self.env, self.log_path)
        deadline = time.monotonic() + timeout
        while not self.answers("/healthcheck", auth=False):
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "Flower did not answer"
            time.sleep(0.2)
        return self

    def get(self, path: str, *, auth: bool = True, timeout: float = 10) -> httpx.Response:
        login = self.login if auth else None
        return httpx.get(f"{self.url}{path}", auth=login, timeout=timeout)

    def answers(self, path: str, *, auth: bool = True) -> bool:
        try:
            return self.get(path, auth=auth, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        stop_process_group(self.process)
        self.process = None

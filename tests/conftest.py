"""Real-service fixtures: each test session starts its own PocketBase and Redis on free ports.

Servers live in pytest's temporary directories and are stopped at the end of the session, also
when tests fail. Nothing here connects to a server this session did not start.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.local_servers import LocalPocketBase, LocalRedis, MissingBinary
from fathom2loom.pocketbase.client import BatchOp, PocketBase
from fathom2loom.pocketbase.filters import pb_filter
from fathom2loom.settings import (
    DEFAULT_HOOKS_DIR,
    DEFAULT_MIGRATIONS_DIR,
    Settings,
    load_settings,
)

pytest_plugins = ["tests.pipeline"]

ADMIN_EMAIL = "admin@fathom2loom.test"
ADMIN_PASSWORD = "admin-password-for-tests"
# One random key per test session, the same however this module is imported (pytest loads it as
# `conftest`, the helpers as `tests.conftest`): PocketBase's hooks and the workers must agree.
ENCRYPTION_KEY = os.environ.setdefault("FATHOM2LOOM_TEST_ENCRYPTION_KEY", secrets.token_hex(32))
APP_COLLECTIONS = ("logs", "queue", "api_keys", "auto_move", "user_meta", "users")


def _start(server: Any) -> Any:
    try:
        return server.start()
    except MissingBinary as exc:
        pytest.exit(str(exc), returncode=3)


def start_pocketbase(
    root: Path,
    *,
    migrations: bool = True,
    superuser: bool = True,
    migrations_dir: Path = DEFAULT_MIGRATIONS_DIR,
    hooks: bool = True,
    hooks_dir: Path = DEFAULT_HOOKS_DIR,
    env: dict[str, str] | None = None,
    public_dir: Path | None = None,
) -> Any:
    server = LocalPocketBase(
        root / "pb_data",
        migrations_dir if migrations else None,
        hooks_dir=hooks_dir if hooks else None,
        env={"PB_ENCRYPTION_KEY": ENCRYPTION_KEY, **(env or {})},
        public_dir=public_dir,
    )
    if superuser:
        server.create_superuser(ADMIN_EMAIL, ADMIN_PASSWORD)
    return _start(server)


@pytest.fixture(scope="session")
def pb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPocketBase]:
    server = start_pocketbase(tmp_path_factory.mktemp("pocketbase"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    server = _start(LocalRedis(tmp_path_factory.mktemp("redis")))
    try:
        yield server
    finally:
        server.stop()


def make_settings(pb_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "pb_url": pb_url,
        "redis_url": redis_url,
        "pb_admin_email": ADMIN_EMAIL,
        "pb_admin_password": ADMIN_PASSWORD,
        "pb_encryption_key": ENCRYPTION_KEY,
        "pb_startup_wait_seconds": 20,
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture(scope="session")
def settings(pb_server: LocalPocketBase, redis_server: LocalRedis) -> Settings:
    return make_settings(pb_server.url, redis_server.url, pb_data_dir=pb_server.data_dir)


@pytest.fixture(scope="session")
def admin_session(settings: Settings) -> Iterator[PocketBase]:
    from fathom2loom.bootstrap import bootstrap

    with PocketBase.from_settings(settings) as pb:
        bootstrap(settings, pb)
        yield pb


def wipe(pb: PocketBase) -> None:
    for collection in APP_COLLECTIONS:
        ids = [r["id"] for r in pb.list_all(collection, fields="id", per_page=1000)]
        pb.batch([BatchOp("DELETE", collection, id=i) for i in ids])


@pytest.fixture
def pb(admin_session: PocketBase) -> Iterator[PocketBase]:
    """A superuser client on a PocketBase whose app collections are empty before and after."""
    wipe(admin_session)
    yield admin_session
    wipe(admin_session)


@dataclass
class UserSession:
    """A regular user talking to PocketBase with its own token, as the web app would."""

    id: str
    email: str
    http: httpx.Client

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, **kwargs)

    def records(self, collection: str, record_id: str = "") -> str:
        return f"/api/collections/{collection}/records" + (f"/{record_id}" if record_id else "")

    def list_ids(self, collection: str, filter: str | None = None) -> set[str]:
        params = {"perPage": 500, **({"filter": filter} if filter else {})}
        response = self.call("GET", self.records(collection), params=params)
        response.raise_for_status()
        return {item["id"] for item in response.json()["items"]}

    def save_keys(
        self, fathom: str = "fathom-key-of-a-user-1234", loom: str = "loom-key-of-a-user-5678"
    ) -> None:
        """Save both keys through the API, as the web app does (needed before queueing)."""
        body = {"user_id": self.id, "encrypted_fathom": fathom, "encrypted_loom": loom}
        answer = self.call("POST", self.records("api_keys"), json=body)
        assert answer.status_code == 200, answer.text

    def subscribe(self, *topics: str) -> Subscription:
        return Subscription(self.http, list(topics))


class Subscription:
    """A realtime connection as a browser holds it: what PocketBase sends on `topics`, in order."""

    def __init__(self, http: httpx.Client, topics: list[str]) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._http, self._topics = http, topics
        self._ready = threading.Event()
        threading.Thread(target=self._listen, daemon=True).start()
        assert self._ready.wait(10), "no realtime connection"

    def _listen(self) -> None:
        from fathom2loom.pocketbase.realtime import parse_sse

        timeout = httpx.Timeout(10, read=None)
        with (
            httpx.Client(base_url=self._http.base_url, timeout=timeout) as sse,
            sse.stream("GET", "/api/realtime") as response,
        ):
            for event, data in parse_sse(response.iter_lines()):
                if event == "PB_CONNECT":
                    subscriptions: dict[str, Any] = {"clientId": json.loads(data)["clientId"]}
                    subscriptions["subscriptions"] = self._topics
                    self._http.post("/api/realtime", json=subscriptions).raise_for_status()
                    self._ready.set()
                else:
                    self.events.append((event, json.loads(data)))


@pytest.fixture
def make_user(pb: PocketBase, pb_server: LocalPocketBase) -> Iterator[Callable[[str], UserSession]]:
    sessions: list[UserSession] = []

    def factory(name: str) -> UserSession:
        email, password = f"{name}@users.test", f"{name}-password-123"
        user = pb.create(
            "users", {"email": email, "password": password, "passwordConfirm": password}
        )
        http = httpx.Client(base_url=pb_server.url, timeout=10)
        login = http.post(
            "/api/collections/users/auth-with-password",
            json={"identity": email, "password": password},
        )
        login.raise_for_status()
        http.headers["Authorization"] = login.json()["token"]
        session = UserSession(user["id"], email, http)
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        session.http.close()


__all__ = ["UserSession", "make_settings", "pb_filter", "start_pocketbase"]


# -- providers ------------------------------------------------------------------------------

FATHOM_KEY = "fathom-test-key-0123456789"
LOOM_KEY = "loom-test-key-9876543210"


@pytest.fixture
def fathom_standin() -> Iterator[Any]:
    from devkit.standins.fathom import FathomStandin

    standin = FathomStandin(page_size=10, render_seconds=0.0).start()
    standin.add_key(FATHOM_KEY)
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def loom_standin(tmp_path: Path) -> Iterator[Any]:
    from devkit.standins.loom import LoomStandin

    standin = LoomStandin(storage_dir=tmp_path / "loom").start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def redis_client(redis_server: LocalRedis) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def providers(
    fathom_standin: Any, loom_standin: Any, redis_client: Any, settings: Settings
) -> Iterator[Any]:
    from fathom2loom.providers.factory import Providers
    from fathom2loom.providers.http import RetryPolicy

    configured = make_settings(
        settings.pb_url,
        settings.redis_url,
        fathom_base_url=fathom_standin.url,
        loom_base_url=loom_standin.url,
        fathom_poll_initial_seconds=0.05,
        fathom_poll_max_seconds=0.5,
        loom_chunk_bytes=256 * 1024,
    )
    made = Providers.from_settings(
        configured, redis_client, policy=RetryPolicy(attempts=4, backoff_base=0.05, max_sleep=2.0)
    )
    try:
        yield made
    finally:
        made.close()

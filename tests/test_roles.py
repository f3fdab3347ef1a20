"""Each process needs only the secrets of its role: real worker, beat and Flower processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.local_servers import LocalRedis
from fathom2loom.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.pipeline import Flower
from tests.workers import ROOT, CeleryBeat, CeleryWorker


@pytest.fixture
def role_env(settings: Settings, redis_server: LocalRedis) -> dict[str, str]:
    """PocketBase's superuser but no PB_ENCRYPTION_KEY, and no .env to fall back on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PB_", "REDIS_"))}
    env.update(
        PB_URL=settings.pb_url,
        PB_ADMIN_EMAIL=ADMIN_EMAIL,
        PB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        REDIS_URL=redis_server.url.replace("/0", "/3"),
    )
    return env


def test_a_transfer_worker_without_the_encryption_key_stops_and_says_why(
    role_env: dict[str, str],
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tasks.celery_app", "worker", "-c", "1"],
        env=role_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "fathom2loom: configuration error: PB_ENCRYPTION_KEY is not set" in done.stderr


def test_beat_and_a_dispatch_worker_start_without_it(
    role_env: dict[str, str], tmp_path: Path
) -> None:
    beat = CeleryBeat(role_env, tmp_path / "beat.log")
    dispatch = CeleryWorker(role_env, tmp_path / "dispatch.log")
    dispatch.args += ["-Q", "dispatch"]
    try:
        beat.start()
        dispatch.start()
        # (A process without a secret its role needs exits before it is ready.)
        assert beat.alive() and dispatch.alive()
    finally:
        beat.stop()
        dispatch.stop()


def test_flower_refuses_to_start_without_a_login(role_env: dict[str, str]) -> None:
    env = {k: v for k, v in role_env.items() if not k.startswith(("PB_", "FLOWER_"))}
    done = subprocess.run(
        [sys.executable, "-m", "fathom2loom.cli", "flower", "--port=1"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "FLOWER_BASIC_AUTH is not set" in done.stderr


def test_flower_serves_behind_its_login_with_redis_alone(
    role_env: dict[str, str], tmp_path: Path
) -> None:
    # Given Flower with a login, no PocketBase settings at all, and a password in REDIS_URL
    password = "flower-login-password"
    env = {k: v for k, v in role_env.items() if not k.startswith("PB_")}
    flower = Flower(env, tmp_path / "flower.log", ("ops", password)).start()
    try:
        # Expect its pages and API closed without the login, open with it
        for path in ("/", "/workers", "/api/workers"):
            assert flower.get(path, auth=False, timeout=5).status_code == 401, path
        assert flower.get("/workers").status_code == 200
    finally:
        flower.stop()
    assert password not in (tmp_path / "flower.log").read_text()


def test_configuration_shown_by_workers_masks_the_redis_password(
    role_env: dict[str, str],
) -> None:
    # What Flower's worker page shows is the worker's censored configuration table
    env = {**role_env, "REDIS_URL": "redis://:redis-pass-1234567@127.0.0.1:6379/0"}
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tasks.celery_app import app; from celery.app.utils import filter_hidden_settings;"
            " print(filter_hidden_settings(app.conf.table(with_defaults=True)))",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "redis-pass-1234567" not in shown.stdout
    assert "redbeat_redis_url" in shown.stdout

"""The test harness's own servers: they start, answer, stop, and leave nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from fathom2loom.local_servers import LocalRedis, MissingBinary, redis_binary
from tests.conftest import start_pocketbase


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_redis_runs_without_persistence_and_stops(tmp_path: Path) -> None:
    server = LocalRedis(tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert client.config_get("save")["save"] == ""
    client.close()
    server.stop()
    assert not port_open(server.port)
    leftovers = [p.name for p in (tmp_path / "redis").iterdir() if p.suffix in (".rdb", ".aof")]
    assert leftovers == []


def test_pocketbase_stops_and_frees_its_port(tmp_path: Path) -> None:
    server = start_pocketbase(tmp_path)
    assert server.healthy()
    server.stop()
    assert not port_open(server.port)


def test_missing_redis_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SERVER_BIN", "/nonexistent/redis-server")
    with pytest.raises(MissingBinary, match="apt-get install redis-server"):
        redis_binary()


def test_session_redis_is_ours(redis_server: LocalRedis) -> None:
    assert redis_server.port != 6379
    assert redis.Redis.from_url(redis_server.url).ping()


def test_make_run_without_redis_says_how_to_install_it(tmp_path: Path) -> None:
    env = {**os.environ, "REDIS_SERVER_BIN": "/nonexistent/redis-server"}
    done = subprocess.run(
        [sys.executable, "-m", "fathom2loom.cli", "dev", "--state-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "fathom2loom: redis-server was not found: install it with `apt-get install redis-server`"
        " (Debian/Ubuntu) or `brew install redis` (macOS), or set REDIS_SERVER_BIN"
    ]

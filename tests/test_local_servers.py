"""The test harness's own servers: they start, answer, stop, and leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from devkit.local_servers import LocalRedis, MissingBinary, free_port, redis_binary
from fathom2loom.settings import SECRET_VARIABLES
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
        [sys.executable, "-m", "devkit", "run", "--state-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "devkit: redis-server was not found: install it with `apt-get install redis-server`"
        " (Debian/Ubuntu) or `brew install redis` (macOS), or set REDIS_SERVER_BIN"
    ]


ROLE_MARKERS = {
    "worker": " worker ",
    "beat": " beat ",
    "flower": " flower ",
    "webhooks": " webhooks ",
    "standins": "devkit.standins",
    "pocketbase": "pocketbase serve",
    "redis-server": "redis-server",
}


def roles(parent: int) -> dict[str, int]:
    """The processes `make run` started, by role (from their command lines)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
            continue
        for role, marker in ROLE_MARKERS.items():
            if marker in f"{command} ":
                found[role] = int(entry.name)
                break
    return found


def secrets_in_environment(pid: int) -> set[str]:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    names = {item.split(b"=", 1)[0].decode() for item in environ if b"=" in item}
    return names & SECRET_VARIABLES


def test_make_run_starts_the_sandbox_and_the_cli_finds_it(tmp_path: Path) -> None:
    # Given `make run` (python -m devkit run) started in a checkout, on ports of its own
    ports = {f"DEV_{name}_PORT": str(free_port()) for name in ("PB", "REDIS", "FATHOM", "LOOM")}
    ports["DEV_FLOWER_PORT"] = str(free_port())
    ports["DEV_WEBHOOK_PORT"] = str(free_port())
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PB_", "REDIS_", "LOOM_"))}
    # (A shell whose operator exported secrets: none of them may leak into every process.)
    shell = {**clean, "PB_ENCRYPTION_KEY_PREVIOUS": "f" * 64, "REDIS_PASSWORD": "unused-here"}
    log = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen(
        [sys.executable, "-m", "devkit", "run"],
        env={**shell, **ports},
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while b"Ctrl-C stops everything." not in (tmp_path / "dev.log").read_bytes():
            assert dev.poll() is None, (tmp_path / "dev.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "dev.log").read_text()
            time.sleep(0.2)
        # When the operator runs the CLI in that checkout with nothing configured
        status = subprocess.run(
            [sys.executable, "-m", "fathom2loom.cli", "status", "demo@fathom2loom.local", "--json"],
            env=clean,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        # Expect it to find the running stack by itself: the demo user's five meetings
        assert status.returncode == 0, status.stderr
        rows = json.loads(status.stdout)
        assert sorted(r["meeting"] for r in rows) == ["1001", "1002", "1003", "1004", "1005"]
        assert (tmp_path / ".run" / "cli.env").stat().st_mode & 0o777 == 0o600
        # And each process holding only the secrets its role needs, as compose gives them
        secrets_of = {role: secrets_in_environment(pid) for role, pid in roles(dev.pid).items()}
        assert secrets_of == {
            "worker": {"PB_ADMIN_PASSWORD", "PB_ENCRYPTION_KEY"},
            "beat": {"PB_ADMIN_PASSWORD"},
            "flower": {"FLOWER_BASIC_AUTH"},
            "webhooks": {"PB_ADMIN_PASSWORD", "PB_ENCRYPTION_KEY"},
            "standins": set(),
            "pocketbase": {"PB_ENCRYPTION_KEY"},
            "redis-server": set(),
        }
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(30)
        log.close()
    # And Ctrl-C (here SIGTERM) to leave nothing listening
    for port in ports.values():
        assert not port_open(int(port))

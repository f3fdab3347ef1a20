"""The log sink against real Redis and PocketBase: fields, redaction, bounds, and no loss."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from devkit.local_servers import LocalRedis
from fathom2loom.bootstrap import bootstrap
from fathom2loom.errors import PocketBaseUnavailable
from fathom2loom.logsink.buffer import PROCESSING, LogBuffer
from fathom2loom.logsink.context import bind, log_context
from fathom2loom.logsink.flush import BATCH_RECORDS, _write, flush_logs
from fathom2loom.logsink.handler import CHECK_SECONDS, RedisLogHandler
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.redact import secret_scope
from fathom2loom.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings, start_pocketbase
from tests.http_proxy import Proxy
from tests.workers import ROOT

FATHOM_KEY = "fathomKey_8f3a9c2e71d04b5a"
LOOM_KEY = "loom-key-2b7d9e0c4a6f8130"
SIGNED_URL = "https://storage.fathom.test/v/991.mp4?X-Amz-Signature=ab12cd34&X-Amz-Expires=86400"


@pytest.fixture
def sink_logger(redis_server: Any, redis_client: redis.Redis) -> Iterator[logging.Logger]:
    """A logger of our own (named like the transfer's) writing through the sink handler."""
    logger = logging.getLogger(f"tasks.transfer.test{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = RedisLogHandler(redis_server.url)
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)
    handler.close()


@contextmanager
def handled_logger(name: str, handler: RedisLogHandler) -> Iterator[logging.Logger]:
    """A logger of a process of its own making: `handler` alone, from INFO up."""
    logger = logging.getLogger(name)
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()


def drain(pb: PocketBase, client: redis.Redis, *loggers: logging.Logger) -> int:
    """Push what the handlers queued, then flush until the buffer is empty."""
    for logger in loggers:
        for handler in logger.handlers:
            handler.flush()
    buffer, written = LogBuffer(client), 0
    while buffer.size():
        report = flush_logs(pb, buffer, batch_size=pb.batch_size)
        assert report is not None
        written += report.written
    return written


def test_records_carry_the_collections_fields(
    pb: PocketBase, redis_client: redis.Redis, sink_logger: logging.Logger
) -> None:
    user = pb.create(
        "users", {"email": "logs@u.test", "password": "p" * 12, "passwordConfirm": "p" * 12}
    )
    # Given an event logged about a user's row, with an exception
    try:
        raise ValueError("boom")
    except ValueError:
        sink_logger.error(
            "transfer %s failed",
            "row1",
            exc_info=True,
            extra={"user_id": user["id"], "row_id": "r1"},
        )
    sink_logger.info("plain info")
    sink_logger.debug("not stored: our loggers start at INFO")
    logged_at = time.time()
    time.sleep(1.2)
    # When the flusher runs, later
    assert drain(pb, redis_client, sink_logger) == 2
    rows = {r["msg"]: r for r in pb.list_all("logs")}
    error = rows["transfer row1 failed"]
    # Expect each field right, and ts the event's time rather than the write's
    assert error["level"] == "error" and rows["plain info"]["level"] == "info"
    assert error["user_id"] == user["id"] and error["component"] == "transfer"
    assert error["metadata"]["row_id"] == "r1"
    assert error["metadata"]["exc_type"] == "ValueError"
    assert "ValueError: boom" in error["metadata"]["traceback"]
    stamp = time.mktime(time.strptime(error["ts"][:19], "%Y-%m-%d %H:%M:%S")) - time.timezone
    assert abs(stamp - logged_at) < 1.0
    assert stamp < time.time() - 1.0


def test_keys_and_signed_urls_are_masked(
    pb: PocketBase, redis_client: redis.Redis, sink_logger: logging.Logger
) -> None:
    # Registered by the task that holds them, and also unregistered (caught by their shape)
    with secret_scope(FATHOM_KEY, LOOM_KEY):
        sink_logger.warning(
            "keys %s / %s, file %s", FATHOM_KEY, LOOM_KEY, SIGNED_URL, extra={"url": SIGNED_URL}
        )
    sink_logger.warning(
        "again %s %s %s", FATHOM_KEY, LOOM_KEY, SIGNED_URL, extra={"api_key": FATHOM_KEY}
    )
    sink_logger.warning("Authorization: Bearer %s password=%s", LOOM_KEY, "hunter2hunter2")
    drain(pb, redis_client, sink_logger)
    stored = str(list(pb.list_all("logs")))
    for secret in (FATHOM_KEY, LOOM_KEY, "X-Amz-Signature=ab12cd34", "hunter2hunter2"):
        assert secret not in stored
    assert "[redacted]" in stored and "storage.fathom.test/v/991.mp4" in stored


def test_only_warnings_and_above_from_other_libraries(
    pb: PocketBase, redis_client: redis.Redis, redis_server: Any
) -> None:
    handler = RedisLogHandler(redis_server.url)
    for name, level in (
        ("celery.worker.consumer", logging.WARNING),
        ("celery.worker.consumer", logging.INFO),
        ("httpx", logging.INFO),
        ("fathom2loom.dispatcher", logging.INFO),
    ):
        record = logging.LogRecord(name, level, __file__, 1, f"{name} {level}", (), None)
        handler.handle(record)
    handler.close()
    drain(pb, redis_client)
    assert sorted(r["msg"] for r in pb.list_all("logs")) == [
        "celery.worker.consumer 30",
        "fathom2loom.dispatcher 20",
    ]
    assert {r["component"] for r in pb.list_all("logs")} == {"celery", "dispatcher"}


WRITER = """
import logging, sys
from fathom2loom.logsink.handler import RedisLogHandler
logger = logging.getLogger("tasks.writer")
logger.setLevel(logging.INFO)
logger.addHandler(RedisLogHandler(sys.argv[1]))
for n in range(int(sys.argv[3])):
    logger.info("record %s-%d", sys.argv[2], n)
"""


def test_ten_thousand_records_from_several_processes_arrive_exactly_once(
    pb: PocketBase, redis_client: redis.Redis, redis_server: Any
) -> None:
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, redis_server.url, f"p{n}", "2500"], cwd=ROOT
        )
        for n in range(4)
    ]
    for writer in writers:
        assert writer.wait(120) == 0
    assert drain(pb, redis_client) == 10_000
    messages = [r["msg"] for r in pb.list_all("logs", fields="msg", per_page=1000)]
    assert len(messages) == len(set(messages)) == 10_000
    assert {m.split("-")[0] for m in messages} == {f"record p{n}" for n in range(4)}


def test_records_wait_out_a_pocketbase_outage(
    tmp_path: Path, redis_client: redis.Redis, redis_server: Any, sink_logger: logging.Logger
) -> None:
    # Given a PocketBase of this test's own that goes down
    server = start_pocketbase(tmp_path)
    settings = make_settings(server.url, redis_server.url, pb_retry_attempts=2)
    with PocketBase.from_settings(settings) as pb:
        bootstrap(settings, pb)
        for n in range(300):
            sink_logger.info("before %d", n)
        sink_logger.handlers[0].flush()
        server.stop()
        # When records keep coming and the flusher keeps failing
        with pytest.raises(PocketBaseUnavailable):
            flush_logs(pb, LogBuffer(redis_client), batch_size=100)
        for n in range(200):
            sink_logger.info("during %d", n)
        sink_logger.handlers[0].flush()
        assert LogBuffer(redis_client).size() == 500
        # Expect every record in PocketBase once it is back
        server.start()
        assert drain(pb, redis_client, sink_logger) == 500
        assert len(list(pb.list_all("logs", fields="id", per_page=1000))) == 500
    server.stop()


def test_a_flusher_that_dies_mid_batch_loses_and_doubles_nothing(
    pb: PocketBase, redis_client: redis.Redis, redis_server: Any, sink_logger: logging.Logger
) -> None:
    for n in range(450):
        sink_logger.info("rec %d", n)
    sink_logger.handlers[0].flush()
    buffer = LogBuffer(redis_client)
    # A flusher that wrote its batch to PocketBase and died before removing it from Redis
    dead = buffer.lock(60)
    assert dead is not None
    rows = buffer.take(dead.token, 200)
    assert rows is not None and len(rows) == 200
    _write(pb, rows)
    redis_client.delete("f2l:logs:flush-lock")  # Its lock runs out
    # And a flusher process killed while its batch was on the wire
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen()
    stuck = subprocess.Popen(
        [sys.executable, "-c", KILLED_FLUSHER, redis_server.url, str(blackhole.getsockname()[1])],
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while redis_client.llen(PROCESSING) <= 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(stuck.pid, signal.SIGKILL)
    stuck.wait(10)
    blackhole.close()
    redis_client.delete("f2l:logs:flush-lock")
    # Then a healthy flusher: every record once
    drain(pb, redis_client, sink_logger)
    messages = [r["msg"] for r in pb.list_all("logs", fields="msg", per_page=1000)]
    assert len(messages) == 450 and len(set(messages)) == 450


KILLED_FLUSHER = """
import sys, redis
from fathom2loom.logsink.buffer import LogBuffer
from fathom2loom.logsink.flush import flush_logs
from fathom2loom.pocketbase.client import PocketBase
pb = PocketBase(f"http://127.0.0.1:{sys.argv[2]}", "a@b.test", "x" * 12, timeout=600)
pb._token = "never-checked"
flush_logs(pb, LogBuffer(redis.Redis.from_url(sys.argv[1])), batch_size=400)
"""


def big_records(count: int, size: int = 3000) -> list[dict[str, Any]]:
    """Records like a traceback each, as an outage leaves behind."""
    return [
        {
            "id": f"big{n:012d}",
            "level": "error",
            "msg": f"big {n}",
            "ts": "2026-11-25 10:00:00.000Z",
            "user_id": "",
            "component": "transfer",
            "metadata": {"traceback": "Traceback (most recent call last):\n" + "x" * size},
        }
        for n in range(count)
    ]


@contextmanager
def behind_a_proxy(pb: PocketBase, *, max_body: int) -> Iterator[tuple[Proxy, PocketBase]]:
    """A client of `pb`'s server through a proxy that refuses larger bodies with 413."""
    proxy = Proxy(pb.base_url).start()
    proxy.max_body = max_body
    try:
        with PocketBase(proxy.url, ADMIN_EMAIL, ADMIN_PASSWORD) as behind:
            yield proxy, behind
    finally:
        proxy.stop()


def flush_all(pb: PocketBase, buffer: LogBuffer, rounds: int = 20) -> int:
    written = 0
    for _ in range(rounds):
        if not buffer.size():
            return written
        report = flush_logs(pb, buffer, batch_size=BATCH_RECORDS)
        assert report is not None
        written += report.written
    raise AssertionError(f"the buffer still holds {buffer.size()} records")


def test_a_backlog_of_large_records_goes_in_pieces_and_what_follows_arrives(
    pb: PocketBase, redis_client: redis.Redis
) -> None:
    # Given 10,000 records of 3 kB waiting (30 MB: one take of the flusher), then one more
    buffer = LogBuffer(redis_client)
    records = big_records(10_000)
    for start in range(0, len(records), 1000):
        buffer.push(*records[start : start + 1000])
    buffer.push({**records[0], "id": "after0000000000", "msg": "after the backlog"})
    # When the flusher runs
    written = flush_all(pb, buffer)
    # Expect every record in `logs`, the one after the backlog too
    assert written == 10_001
    stored = {r["msg"] for r in pb.list_all("logs", fields="msg", per_page=1000)}
    assert len(stored) == 10_001 and "after the backlog" in stored


def test_a_proxy_that_refuses_large_bodies_makes_the_flusher_halve(
    pb: PocketBase, redis_client: redis.Redis
) -> None:
    # Given PocketBase behind a proxy that takes no body over 1 MiB (nginx's default is 1 MiB)
    buffer = LogBuffer(redis_client)
    buffer.push(*big_records(2000))
    with behind_a_proxy(pb, max_body=1 << 20) as (proxy, behind):
        # When the flusher sends its 4 MiB pieces through it
        written = flush_all(behind, buffer)
    # Expect the refused requests halved until they passed, and every record stored once
    assert proxy.refused and written == 2000
    assert len(list(pb.list_all("logs", fields="id", per_page=1000))) == 2000


def test_a_record_too_large_for_any_request_is_kept_as_an_excerpt(
    pb: PocketBase, redis_client: redis.Redis
) -> None:
    # Given PocketBase behind a proxy that takes no body over 64 kB, and a 150 kB record
    buffer = LogBuffer(redis_client)
    buffer.push(*big_records(3, size=150_000))
    with behind_a_proxy(pb, max_body=64 << 10) as (_, behind):
        flush_all(behind, buffer)
    # Expect each stored as an error record that says why and keeps its start
    stored = list(pb.list_all("logs", per_page=1000))
    assert len(stored) == 3
    assert all(r["msg"] == "PocketBase refused a log record (request: HTTP 413)" for r in stored)
    assert all('"msg": "big' in r["metadata"]["refused"] for r in stored)


def test_a_handler_whose_queue_overflowed_says_so(
    pb: PocketBase, tmp_path: Path, redis_client: redis.Redis
) -> None:
    # Given a process whose Redis is away, with room for 100 records in memory
    own = LocalRedis(tmp_path / "redis")
    try:
        with handled_logger("tasks.overflow", RedisLogHandler(own.url, backlog=100)) as logger:
            # When it logs 150 records, then Redis comes up
            for n in range(150):
                logger.info("queued %d", n)
            own.start()
            client = redis.Redis.from_url(own.url)
            deadline = time.monotonic() + 10
            while client.llen("f2l:logs:low") + client.llen("f2l:logs:high") < 101:
                assert time.monotonic() < deadline, "the handler did not push"
                time.sleep(0.1)
            drain(pb, client)
            client.close()
    finally:
        own.stop()
    # Expect the 100 it had room for, and a warning that says 50 were dropped: none silently
    stored = {r["msg"]: r for r in pb.list_all("logs", per_page=1000)}
    kept = {m for m in stored if m.startswith("queued ")}
    notice = [r for m, r in stored.items() if m.startswith("log handler queue full")]
    assert len(kept) == 100 and kept <= {f"queued {n}" for n in range(150)}
    assert len(notice) == 1 and notice[0]["level"] == "warn", sorted(stored)[:3]
    assert notice[0]["metadata"]["dropped"] == 50


def test_the_ceiling_drops_the_oldest_low_severity_records_and_says_so(
    pb: PocketBase, redis_client: redis.Redis
) -> None:
    buffer = LogBuffer(redis_client, max_records=100)
    base = {"ts": "2026-11-25 10:00:00.000Z", "user_id": "", "component": "t", "metadata": {}}
    for n in range(30):
        buffer.push({**base, "id": f"warn{n:011d}", "level": "warn", "msg": f"warn {n}"})
    for n in range(80):
        buffer.push({**base, "id": f"info{n:011d}", "level": "info", "msg": f"info {n}"})
    assert buffer.size() == 100
    drain(pb, redis_client)
    messages = {r["msg"] for r in pb.list_all("logs", per_page=1000)}
    assert {f"warn {n}" for n in range(30)} <= messages
    assert not {f"info {n}" for n in range(10)} & messages  # The ten oldest infos went
    assert "log buffer full: dropped 10 oldest low-severity records" in messages


def test_a_refused_record_is_kept_and_never_blocks_the_rest(
    pb: PocketBase, redis_client: redis.Redis
) -> None:
    gone = pb.create(
        "users", {"email": "gone@u.test", "password": "p" * 12, "passwordConfirm": "p" * 12}
    )
    pb.delete("users", gone["id"])
    base = {"ts": "2026-11-25 10:00:00.000Z", "user_id": "", "component": "t", "metadata": {}}
    buffer = LogBuffer(redis_client)
    # When, among good records, one names a user deleted meanwhile and one has no valid level
    buffer.push(
        {**base, "id": "good00000000001", "level": "info", "msg": "before"},
        {**base, "id": "orphan000000001", "level": "info", "msg": "theirs", "user_id": gone["id"]},
        {**base, "id": "loud00000000001", "level": "loud", "msg": "odd one"},
        {**base, "id": "NOT A GOOD ID", "level": "info", "msg": "badly named"},
        {**base, "id": "good00000000002", "level": "info", "msg": "after"},
    )
    drain(pb, redis_client)
    # Expect every good record in, the orphan without its relation (saying whose it was), and
    # the refused one replaced by an error that carries it and says why
    stored = {r["id"]: r for r in pb.list_all("logs")}
    assert {stored["good00000000001"]["msg"], stored["good00000000002"]["msg"]} == {
        "before",
        "after",
    }
    orphan = stored["orphan000000001"]
    assert orphan["user_id"] == "" and orphan["metadata"]["unknown_user_id"] == gone["id"]
    refused = stored["loud00000000001"]
    assert (refused["level"], refused["component"]) == ("error", "logging_sink")
    assert refused["msg"].startswith("PocketBase refused a log record (level:")
    assert '"msg": "odd one"' in refused["metadata"]["refused"]
    # (a record refused for its id is kept under a new one, not refused again and again)
    renamed = [r for r in stored.values() if '"msg": "badly named"' in str(r["metadata"])]
    assert len(renamed) == 1 and renamed[0]["msg"].startswith(
        "PocketBase refused a log record (id:"
    )
    assert len(stored) == 5 and buffer.size() == 0


def test_celery_processes_install_the_sink(settings: Settings, redis_server: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PB_", "REDIS_"))}
    env.update(
        PB_ADMIN_EMAIL=ADMIN_EMAIL,
        PB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        PB_ENCRYPTION_KEY=settings.secret("PB_ENCRYPTION_KEY"),
        REDIS_URL=redis_server.url,
    )
    code = (
        "import logging; from tasks.celery_app import app; import tasks.logging_sink;"
        "from celery.signals import setup_logging;"
        "setup_logging.send(sender=None, loglevel='INFO', logfile=None, format='', colorize=False);"
        "logging.getLogger('celery.worker').warning('from celery');"
        "print(type(logging.getLogger().handlers[-1]).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "RedisLogHandler", done.stderr
    client = redis.Redis.from_url(redis_server.url)
    pushed = client.lrange("f2l:logs:high", 0, -1)
    assert any("from celery" in str(record) for record in pushed)
    client.close()


def test_a_crash_inside_a_transfer_is_logged_with_its_row_and_user(
    pb: PocketBase, redis_client: redis.Redis, sink_logger: logging.Logger
) -> None:
    user = pb.create(
        "users", {"email": "crash@u.test", "password": "p" * 12, "passwordConfirm": "p" * 12}
    )
    task_id = "3f2a1b4c-1d2e-4f5a-9b8c-7d6e5f4a3b2c"
    # Given a record logged while a transfer runs (its row bound first, then its user)
    with log_context(row_id="row123456789012"):
        bind(user_id=user["id"], meeting_id="4242")
        try:
            raise KeyError("boom")
        except KeyError:
            sink_logger.exception("Task fathom2loom.transfer[%s] raised unexpected", task_id)
    sink_logger.info("after the run")
    drain(pb, redis_client, sink_logger)
    rows = {r["msg"]: r for r in pb.list_all("logs")}
    crash = rows[f"Task fathom2loom.transfer[{task_id}] raised unexpected"]
    # Expect the row and user on the crash's record (the task id readable), and on no other
    assert crash["user_id"] == user["id"]
    assert crash["metadata"]["row_id"] == "row123456789012"
    assert crash["metadata"]["meeting_id"] == "4242" and crash["metadata"]["exc_type"] == "KeyError"
    assert (
        rows["after the run"]["user_id"] == "" and "row_id" not in rows["after the run"]["metadata"]
    )


def test_records_outlive_redis_restarting_empty(
    pb: PocketBase, tmp_path: Path, redis_client: redis.Redis
) -> None:
    # Given records a process pushed into a Redis that then dies before any flush
    own = LocalRedis(tmp_path / "redis").start()
    handler = RedisLogHandler(own.url)
    try:
        with handled_logger("tasks.restart", handler) as logger:
            for n in range(300):
                logger.info("kept %d", n)
            handler.flush()
            client = redis.Redis.from_url(own.url)
            assert client.llen("f2l:logs:low") == 300
            assert own.process is not None
            own.process.kill()
            own.process.wait(10)
            own.start()  # Empty, on the same port
            # When the process notices (within a few seconds) and a flusher runs
            deadline = time.monotonic() + 10
            while client.llen("f2l:logs:low") < 300 and time.monotonic() < deadline:
                time.sleep(0.1)
            drain(pb, client)
            # Expect every record in PocketBase, once
            messages = [r["msg"] for r in pb.list_all("logs", fields="msg", per_page=1000)]
            assert sorted(messages) == sorted(f"kept {n}" for n in range(300))
            # And once PocketBase has them, the process forgets them (nothing sent a third time)
            time.sleep(CHECK_SECONDS * 2.5)
            assert not handler._retained
            client.close()
    finally:
        own.stop()

"""Bootstrap on real PocketBase servers: from bare to ready, and idempotent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fathom2loom.bootstrap import BootstrapError, bootstrap
from fathom2loom.pocketbase.client import PocketBase
from fathom2loom.pocketbase.schema import REQUIRED_COLLECTIONS
from tests.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    ENCRYPTION_KEY,
    make_settings,
    start_pocketbase,
)

SCHEMA_KEYS = ("listRule", "viewRule", "createRule", "updateRule", "deleteRule", "indexes")


@pytest.fixture
def bare(tmp_path: Path) -> Any:
    """A PocketBase with neither our migrations nor any superuser, as a fresh hosted one."""
    server = start_pocketbase(tmp_path, migrations=False, superuser=False)
    yield server
    server.stop()


def schema(pb: PocketBase) -> dict[str, Any]:
    return {
        c["name"]: (
            [(f["name"], f["type"], f.get("values"), f.get("collectionId")) for f in c["fields"]],
            [c[key] for key in SCHEMA_KEYS],
        )
        for c in pb.collections()
        if c["name"] in REQUIRED_COLLECTIONS
    }


def test_bootstrap_brings_a_bare_server_to_ready_and_is_idempotent(
    bare: Any, pb_server: Any
) -> None:
    settings = make_settings(bare.url, "redis://127.0.0.1:1/0", pb_data_dir=bare.data_dir)
    # When bootstrap runs on a bare server
    first = bootstrap(settings)
    # Expect it to create the superuser, apply the schema and turn on batches
    assert [a.split(" ")[0] for a in first.actions] == ["created", "applied", "enabled"]
    with PocketBase(bare.url, ADMIN_EMAIL, ADMIN_PASSWORD) as pb:
        batch = pb.get_settings()["batch"]
        assert batch["enabled"] is True
        assert batch["maxRequests"] == settings.pb_batch_size
        imported = schema(pb)
    # And the schema to be the one the migration file creates
    with PocketBase(pb_server.url, ADMIN_EMAIL, ADMIN_PASSWORD) as pb:
        assert imported == schema(pb)
    # When it runs again, nothing changes
    second = bootstrap(settings)
    assert second.actions == []
    assert str(second) == "PocketBase is ready: nothing to do"


def test_bootstrap_repairs_a_collection_that_drifted(bare: Any) -> None:
    settings = make_settings(bare.url, "redis://127.0.0.1:1/0", pb_data_dir=bare.data_dir)
    bootstrap(settings)
    with PocketBase(bare.url, ADMIN_EMAIL, ADMIN_PASSWORD) as pb:
        queue = next(c for c in pb.collections() if c["name"] == "queue")
        pb.request("PATCH", f"/api/collections/{queue['id']}", json={"listRule": ""})
    report = bootstrap(settings)
    assert report.actions == ["applied migrations to queue"]


def test_without_a_superuser_or_data_dir_bootstrap_says_what_to_do(bare: Any) -> None:
    settings = make_settings(bare.url, "redis://127.0.0.1:1/0")
    with pytest.raises(BootstrapError, match="PB_DATA_DIR"):
        bootstrap(settings)


def test_a_wrong_admin_password_is_reported(bare: Any) -> None:
    settings = make_settings(bare.url, "redis://127.0.0.1:1/0", pb_data_dir=bare.data_dir)
    bootstrap(settings)
    wrong = make_settings(
        bare.url, "redis://127.0.0.1:1/0", pb_data_dir=bare.data_dir, pb_admin_password="x" * 12
    )
    with pytest.raises(BootstrapError, match="does not match"):
        bootstrap(wrong)


def test_a_superuser_pocketbase_refuses_is_reported_in_its_words(bare: Any) -> None:
    password = "p" * 100  # bcrypt, under PocketBase, takes at most 72 bytes
    settings = make_settings(
        bare.url, "redis://127.0.0.1:1/0", pb_data_dir=bare.data_dir, pb_admin_password=password
    )
    with pytest.raises(BootstrapError) as refused:
        bootstrap(settings)
    message = str(refused.value)
    assert message.startswith(f"could not create superuser {settings.pb_admin_email}: ")
    assert "password length exceeds 72 bytes" in message and password not in message


def test_cli_bootstrap_reports_and_is_safe_to_run_twice(
    bare: Any, tmp_path: Path, redis_server: Any
) -> None:
    env = {
        "REDIS_URL": redis_server.url,
        "PATH": "/usr/bin:/bin",
        "PB_URL": bare.url,
        "PB_ADMIN_EMAIL": ADMIN_EMAIL,
        "PB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PB_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "PB_DATA_DIR": str(bare.data_dir),
    }

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "fathom2loom.cli", "bootstrap"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert ADMIN_PASSWORD not in done.stdout + done.stderr
        return done.stdout

    assert "created superuser" in run()
    assert "nothing to do" in run()

"""Settings: a missing or malformed value stops start-up with one line naming the variable."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys

import pytest

from fathom2loom.settings import ConfigError, decode_encryption_key, load_settings

GOOD = {
    "PB_ADMIN_EMAIL": "ops@example.com",
    "PB_ADMIN_PASSWORD": "correct-horse-battery",
    "PB_ENCRYPTION_KEY": secrets.token_hex(32),
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]) -> pytest.MonkeyPatch:
    """A clean environment and a working directory without a .env file."""
    for name in list(os.environ):
        if name.startswith(("PB_", "REDIS_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_valid_environment_loads(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.pb_admin_email == "ops@example.com"
    assert len(settings.encryption_key) == 32
    assert settings.redis_url.startswith("redis://")


def test_missing_admin_password_names_the_variable(env: pytest.MonkeyPatch) -> None:
    env.delenv("PB_ADMIN_PASSWORD")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("PB_ADMIN_PASSWORD is not set: expected")


@pytest.mark.parametrize("length", [16, 31, 33, 64])
def test_wrong_encryption_key_length_names_the_variable(
    env: pytest.MonkeyPatch, length: int
) -> None:
    key = base64.b64encode(secrets.token_bytes(length)).decode()
    env.setenv("PB_ENCRYPTION_KEY", key)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("PB_ENCRYPTION_KEY is invalid")
    assert f"decodes to {length} bytes" in message
    assert key not in message


def test_secret_values_never_appear_in_errors(env: pytest.MonkeyPatch) -> None:
    env.setenv("PB_ADMIN_PASSWORD", "short")
    env.setenv("PB_ENCRYPTION_KEY", "not-a-key-zz!")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "PB_ADMIN_PASSWORD is invalid" in message
    assert "PB_ENCRYPTION_KEY is invalid" in message
    assert "short" not in message.replace("characters", "")
    assert "not-a-key-zz!" not in message


def test_encryption_key_accepts_hex_and_base64() -> None:
    raw = secrets.token_bytes(32)
    assert decode_encryption_key(raw.hex()) == raw
    assert decode_encryption_key(base64.b64encode(raw).decode()) == raw
    assert decode_encryption_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("REDIS_URL", "localhost:6379", "REDIS_URL is invalid"),
        ("PB_URL", "ftp://x", "PB_URL is invalid"),
        ("PB_ADMIN_EMAIL", "not-an-email", "PB_ADMIN_EMAIL is invalid"),
        ("PB_BATCH_SIZE", "0", "PB_BATCH_SIZE is invalid"),
    ],
)
def test_malformed_values_name_their_variable(
    env: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    env.setenv(variable, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_cli_prints_one_line_and_exits_2(env: pytest.MonkeyPatch) -> None:
    env.delenv("PB_ADMIN_PASSWORD")
    done = subprocess.run(
        [sys.executable, "-m", "fathom2loom.cli", "bootstrap"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "PB_ADMIN_PASSWORD is not set" in lines[0]
    assert GOOD["PB_ENCRYPTION_KEY"] not in done.stderr


def test_celery_worker_import_stops_on_bad_setting(env: pytest.MonkeyPatch) -> None:
    env.setenv("PB_ENCRYPTION_KEY", "00" * 16)
    done = subprocess.run(
        [sys.executable, "-c", "import tasks.celery_app"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "PB_ENCRYPTION_KEY is invalid" in done.stderr

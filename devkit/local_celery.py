"""Real Celery processes (workers, beat, Flower) on this machine, each in its own process group
and log file: for tests, benches and `make run`.

Each process is started with the environment it is given (settings travel as environment
variables, as in production) and counted as started once its log says it is ready.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fathom2loom.settings import PROJECT_ROOT

__all__ = ["CeleryBeat", "CeleryProcess", "CeleryWorker"]


@dataclass
class CeleryProcess:
    env: dict[str, str]
    log_path: Path
    args: list[str]
    ready_marker: bytes
    process: subprocess.Popen[bytes] | None = field(default=None)

    def start(self, timeout: float = 30) -> CeleryProcess:
        command = [sys.executable, "-m", "celery", "-A", "tasks.celery_app", *self.args]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while self.ready_marker not in self.log_path.read_bytes()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery {self.args[0]} did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the process and its children at once, as a crash or an OOM kill would."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM the main process only, as `docker stop` does (PID 1 of the container)."""
        if self.alive():
            assert self.process is not None
            self.process.terminate()

    def stop(self, grace: float = 10) -> None:
        if not self.alive():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()


def CeleryWorker(
    env: dict[str, str], log_path: Path, concurrency: int = 1, name: str = "w"
) -> CeleryProcess:
    args = ["worker", "--pool", "prefork", "--concurrency", str(concurrency)]
    args += ["--hostname", f"{name}-{time.monotonic_ns()}@local", "--loglevel", "INFO"]
    args += ["--without-gossip", "--without-mingle"]
    return CeleryProcess(env, log_path, args, b" ready.")


def CeleryBeat(env: dict[str, str], log_path: Path) -> CeleryProcess:
    return CeleryProcess(env, log_path, ["beat", "--loglevel", "INFO"], b"beat: Starting")

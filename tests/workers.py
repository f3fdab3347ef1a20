"""Real Celery worker processes for tests, each in its own process group, with its own log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class CeleryWorker:
    env: dict[str, str]
    log_path: Path
    concurrency: int = 1
    name: str = "w"
    process: subprocess.Popen[bytes] | None = field(default=None)

    def start(self, timeout: float = 30) -> CeleryWorker:
        command = [sys.executable, "-m", "celery", "-A", "tasks.celery_app", "worker"]
        command += ["--pool", "prefork", "--concurrency", str(self.concurrency)]
        command += ["--hostname", f"{self.name}-{time.monotonic_ns()}@test", "--loglevel", "INFO"]
        command += ["--without-gossip", "--without-mingle"]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log_path.read_bytes()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crash or an OOM kill would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

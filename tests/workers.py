"""Real Celery processes for tests: the library's local launcher (`fathom2loom.local_celery`)."""

from fathom2loom.local_celery import CeleryBeat, CeleryProcess, CeleryWorker
from fathom2loom.settings import PROJECT_ROOT as ROOT

__all__ = ["ROOT", "CeleryBeat", "CeleryProcess", "CeleryWorker"]

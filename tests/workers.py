"""Real Celery processes for tests: the dev kit's local launcher (`devkit.local_celery`)."""

from devkit.local_celery import CeleryBeat, CeleryProcess, CeleryWorker
from fathom2loom.settings import PROJECT_ROOT as ROOT

__all__ = ["ROOT", "CeleryBeat", "CeleryProcess", "CeleryWorker"]

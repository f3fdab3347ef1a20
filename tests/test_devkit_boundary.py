"""The dev kit stays out of production: no module of the service imports it, and the wheel
does not ship it (the image carries it only for the compose sandbox profile)."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from fathom2loom.settings import PROJECT_ROOT as ROOT

EVERY_MODULE = """
import importlib, pkgutil, sys
import fathom2loom, tasks
for package in (fathom2loom, tasks):
    for found in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not found.name.endswith("__main__"):
            importlib.import_module(found.name)
print(sorted(name for name in sys.modules if name.split(".")[0] == "devkit"))
"""


def test_no_service_module_imports_the_dev_kit() -> None:
    done = subprocess.run(
        [sys.executable, "-c", EVERY_MODULE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_wheel_leaves_the_dev_kit_out() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["fathom2loom", "tasks"]
    assert not any("devkit" in path for path in wheel.get("force-include", {}))

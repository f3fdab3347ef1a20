"""Local stand-ins for Fathom and Loom: real HTTP servers on loopback, with scripted faults.

Tests and the sandbox point the real clients at them. `python -m devkit.standins` starts
both in their own process; the `/_standin/*` control endpoints drive them from outside.
"""

from devkit.standins.base import StandinServer
from devkit.standins.content import content_sha256, iter_content
from devkit.standins.fathom import FathomStandin
from devkit.standins.loom import LoomStandin

__all__ = ["FathomStandin", "LoomStandin", "StandinServer", "content_sha256", "iter_content"]

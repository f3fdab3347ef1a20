"""Local stand-ins for Fathom and Loom: real HTTP servers on loopback, with scripted faults.

Tests and the sandbox point the real clients at them. `python -m fathom2loom.standins` starts
both in their own process; the `/_standin/*` control endpoints drive them from outside.
"""

from fathom2loom.standins.base import StandinServer
from fathom2loom.standins.content import content_sha256, iter_content
from fathom2loom.standins.fathom import FathomStandin
from fathom2loom.standins.loom import LoomStandin

__all__ = ["FathomStandin", "LoomStandin", "StandinServer", "content_sha256", "iter_content"]

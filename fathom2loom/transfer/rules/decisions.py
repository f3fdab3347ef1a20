"""A rule's answer: what to do next, and what to write on the row before doing it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fathom2loom.providers.fathom_models import DownloadFile
from fathom2loom.providers.loom import LoomVideo

__all__ = [
    "AskForDownload",
    "Changes",
    "Complete",
    "Decision",
    "MakeVideo",
    "UseFile",
    "UseVideo",
]

Changes = dict[str, Any]  # `QueueRow` attribute names and their new values
ActionT = TypeVar("ActionT", covariant=True)


@dataclass(frozen=True)
class Decision(Generic[ActionT]):
    """What to do next, and what to save on the row before doing it."""

    action: ActionT
    changes: Changes = field(default_factory=dict)


@dataclass(frozen=True)
class UseFile:
    """Fathom's file is ready: stream it."""

    file: DownloadFile


@dataclass(frozen=True)
class AskForDownload:
    """Ask Fathom for a fresh download; `why` the last one could not be used ("" if none)."""

    why: str = ""


@dataclass(frozen=True)
class UseVideo:
    video: LoomVideo


@dataclass(frozen=True)
class MakeVideo:
    """Create the row's Loom video under the state's current key generation."""


@dataclass(frozen=True)
class Complete:
    video: LoomVideo

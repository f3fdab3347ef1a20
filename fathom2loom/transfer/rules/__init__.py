"""The transfer's rules as pure decisions: the row and what a server just said in; what to do
next, and what to write on the row, out.

Nothing here calls a server, reads the clock or saves a row. `run.py` asks Fathom, Loom and
PocketBase, passes what it saw (and the time) to a rule here, saves the `changes` the rule returns
(in one place, `_Run._save`) and carries out its action. A rule that ends the row raises
`RowFailed` with the message the user reads. So each rule is checked in microseconds
(`tests/test_transfer_decisions.py`) and the real-server tests check the wiring. Waits back off
with jitter (`retry.backoff_delay`), the one thing here that is not repeatable.

decisions.py  a `Decision`: an action and the row's changes
download.py   Fathom's file: reuse the row's download, wait for its render, or ask for a new one
video.py      the row's Loom video: one per (user, recording), remade only when lost or failed
row.py        a run's start and resumption, transient faults, and the row's final writes
"""

from fathom2loom.transfer.rules.decisions import (
    AskForDownload,
    Changes,
    Complete,
    Decision,
    MakeVideo,
    UseFile,
    UseVideo,
)
from fathom2loom.transfer.rules.download import RENDERING, kept_download, new_download
from fathom2loom.transfer.rules.row import (
    MAX_EXCUSED_OUTAGES,
    completion,
    deferral,
    failure,
    resume,
    retry_later,
    start,
)
from fathom2loom.transfer.rules.video import (
    LOOM_PROCESSING,
    created_video,
    idempotency_key,
    kept_video,
    video_gone,
    video_outcome,
)

__all__ = [
    "LOOM_PROCESSING",
    "MAX_EXCUSED_OUTAGES",
    "RENDERING",
    "AskForDownload",
    "Changes",
    "Complete",
    "Decision",
    "MakeVideo",
    "UseFile",
    "UseVideo",
    "completion",
    "created_video",
    "deferral",
    "failure",
    "idempotency_key",
    "kept_download",
    "kept_video",
    "new_download",
    "resume",
    "retry_later",
    "start",
    "video_gone",
    "video_outcome",
]

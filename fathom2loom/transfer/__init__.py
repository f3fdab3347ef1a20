"""The transfer of one queue row from Fathom to Loom, free of Celery.

steps.py        what a run ends with: `Done` or `Wait`
run.py          the rules: one run of a row, every fault turned into a step
fathom_file.py  the file from Fathom: reuse the row's download, or ask for a fresh one
loom_video.py   the row's Loom video: one per (user, recording), remade only when lost or failed
progress.py     upload progress on the row and the task, and the reasons to stop
"""

from fathom2loom.transfer.run import RunControl, TransferPorts, run_transfer
from fathom2loom.transfer.steps import Done, RowFailed, Step, Wait

__all__ = ["Done", "RowFailed", "RunControl", "Step", "TransferPorts", "Wait", "run_transfer"]

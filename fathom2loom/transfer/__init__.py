"""The transfer of one queue row from Fathom to Loom, free of Celery.

steps.py          what a run ends with: `Done` or `Wait`
run.py            one run of a row: asks the servers, saves the row, makes every fault a step
rules.py          the rules, pure: the row and what a server said in; action and changes out
ports.py          what a run needs from outside, as Protocols (real stores and clients, or fakes)
meeting_notes.py  the Loom video's title and description, from Fathom's meeting and summary
progress.py       upload progress on the row and the task, and the reasons to stop
"""

from fathom2loom.transfer.run import RunControl, TransferPorts, run_transfer
from fathom2loom.transfer.steps import Done, RowFailed, Step, Wait

__all__ = ["Done", "RowFailed", "RunControl", "Step", "TransferPorts", "Wait", "run_transfer"]

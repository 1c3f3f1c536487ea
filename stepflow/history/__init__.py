"""The read library: what `ls`, `show`, `logs`, `logs --follow` and `stepflow serve` share.

Everything here goes through the `Store` protocol (stepflow.store.base) and returns values;
nothing prints. `runs`: list with filters and the abandoned sweep, resolve ids; `detail`:
JSON-ready dicts of a run; `logs`: a run's lines, a step by name or number, and `follow`, a
generator of new lines and status changes driven by the store's `watch`.
"""

from stepflow.history.abandoned import is_abandoned, notice, sweep
from stepflow.history.detail import run_detail, run_summary
from stepflow.history.logs import CaughtUp, Ended, RunChanged, find_step, follow, lines
from stepflow.history.runs import list_runs, resolve, show_run

__all__ = [
    "CaughtUp", "Ended", "RunChanged", "find_step", "follow", "is_abandoned", "lines", "list_runs", "notice", "resolve",
    "run_detail", "run_summary", "show_run", "sweep",
]

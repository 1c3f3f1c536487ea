"""The read library: what `ls`, `show`, `logs`, `logs --follow` and `stepflow serve` share.

Everything here goes through the `Store` protocol (stepflow.store.base) and returns values;
nothing prints. `runs`: list with filters and the abandoned sweep, resolve ids, a run's
detail; `detail`: JSON-ready dicts of a run; `logs`: a run's lines, a step by name or number,
and `follow`, a generator of new lines and run changes driven by the store's `watch`;
`abandoned`: runs whose stepflow process is gone.

Names are imported on first use (`from stepflow.history import follow`), so `ls` does not
load what only `logs --follow` needs. `stepflow run` never imports this package.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any

_API = {
    "list_runs": "runs", "resolve": "runs", "show_run": "runs", "MIN_PREFIX": "runs",
    "run_summary": "detail", "run_detail": "detail",
    "lines": "logs", "find_step": "logs", "follow": "logs", "CaughtUp": "logs", "RunChanged": "logs",
    "Ended": "logs",
    "is_abandoned": "abandoned", "notice": "abandoned", "sweep": "abandoned",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        module = f"stepflow.history.{_API[name]}"
        return getattr(__import__(module, fromlist=[name]), name)  # not importlib: ~1 ms at start-up
    raise AttributeError(f"module 'stepflow.history' has no attribute {name!r}")

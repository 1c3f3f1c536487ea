"""stepflow: watch shell scripts run, and keep their history in SQLite.

The library under the CLI, for tests and for programs that embed stepflow::

    from stepflow import RunOptions, execute, load_settings
    from stepflow.views.plain import PlainView

    result = execute(RunOptions(argv=["./deploy.sh"]), load_settings(), PlainView())

Names are imported on first use, so `import stepflow` (which every command does) stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_API = {
    "RunOptions": "stepflow.run.options",
    "RunResult": "stepflow.run.options",
    "execute": "stepflow.run.execute",
    "Settings": "stepflow.config",
    "load_settings": "stepflow.config",
    "Store": "stepflow.store",
    "RunQuery": "stepflow.store",
    "open_store": "stepflow.store",
    "parse_line": "stepflow.dialects.stepflow",
    "StepflowError": "stepflow.errors",
    "ExitStatus": "stepflow.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        module = __import__(_API[name], fromlist=[name])  # not importlib: its import costs every command
        return getattr(module, name)
    raise AttributeError(f"module 'stepflow' has no attribute {name!r}")

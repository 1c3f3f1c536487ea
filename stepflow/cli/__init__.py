"""The `stepflow` command: parse, call the library, print, map errors to exit statuses."""

from __future__ import annotations

import os
import sys

from stepflow.cli import history, run, upkeep  # noqa: F401  (importing registers the commands)
from stepflow.cli.common import app
from stepflow.config import RAISE_ERRORS
from stepflow.errors import ExitStatus, StepflowError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning StepflowError into `stepflow: error: ...` and a status."""
    try:
        app(args=argv, prog_name="stepflow", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except StepflowError as exc:
        if os.environ.get(RAISE_ERRORS, "") not in ("", "0"):
            raise
        print(f"stepflow: error: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        print("stepflow: interrupted", file=sys.stderr)
        return ExitStatus.CTRL_C
    return ExitStatus.OK

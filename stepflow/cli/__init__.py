"""The `stepflow` command: parse, call the library, print, map errors to exit statuses."""

from __future__ import annotations

import os
import sys

from stepflow.config import RAISE_ERRORS
from stepflow.errors import ExitStatus, StepflowError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning StepflowError into `stepflow: error: ...` and a status.

    A plain `stepflow run ...` skips typer (see cli/run_flags.py); everything else, and any
    `run` line the fast parser is unsure of, goes through the typer app.
    """
    from stepflow.cli.run_flags import parse_run, run_command

    args = sys.argv[1:] if argv is None else argv
    try:
        fast = parse_run(args)
        if fast is not None:
            return run_command(*fast)
        from stepflow.cli.app import app

        app(args=args, prog_name="stepflow", standalone_mode=True)
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

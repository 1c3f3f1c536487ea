"""The `stepflow` command: parse, call the library, print, map errors to exit statuses."""

from __future__ import annotations

import gc
import sys

from stepflow.config import raise_errors
from stepflow.errors import ExitStatus, StepflowError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning StepflowError into `stepflow: error: ...` and a status.

    `--version` and the common forms of `stepflow run ...` and `ls` skip typer (see
    cli/flags.py); everything else, and any line the fast parser is unsure of, goes through
    the typer app.
    """
    args = sys.argv[1:] if argv is None else argv
    try:
        if args == ["--version"]:
            from stepflow import __version__

            print(f"stepflow {__version__}")
            return ExitStatus.OK
        from stepflow.cli.run_flags import parse_run, run_command

        fast = parse_run(args)
        if fast is not None:
            # The start-up makes modules, classes and functions, long-lived and acyclic garbage
            # none of them: collecting through them costs ~5% of a run's start. The run turns
            # the collector back on once the command is spawned (stepflow.run.execute).
            gc.disable()
            command, values, global_values = fast
            return run_command(command, values, **global_values)
        from stepflow.cli.ls import ls_command, parse_ls

        listing = parse_ls(args)
        if listing is not None:
            values, global_values = listing
            return ls_command(values, **global_values)
        from stepflow.cli.run_flags import check_run_words

        check_run_words(args)
        from stepflow.cli.app import app

        status = app(args=args, prog_name="stepflow", standalone_mode=False)
        return status if isinstance(status, int) else ExitStatus.OK
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except StepflowError as exc:
        if raise_errors():
            raise
        print(f"stepflow: error: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        print("stepflow: interrupted", file=sys.stderr)
        return ExitStatus.CTRL_C
    except OSError as exc:  # a file stepflow itself could not use: in words, naming it
        if raise_errors():
            raise
        from stepflow.errors import describe_os_error

        print(f"stepflow: error: {describe_os_error(exc)}", file=sys.stderr)
        return ExitStatus.ERROR
    except Exception as exc:
        if not _is_click_error(exc):
            raise
        return _usage_error(exc)
    return ExitStatus.OK


def _is_click_error(exc: Exception) -> bool:
    """click's own errors (bad option, missing argument, Ctrl-C at a prompt), whichever click
    typer brings (a vendored copy or the click package)."""
    return hasattr(exc, "format_message") and hasattr(exc, "exit_code") or type(exc).__name__ == "Abort"


def _usage_error(exc: Exception) -> int:
    """One line, `stepflow: error: ...`, as for every other error; `stepflow` alone shows help."""
    if type(exc).__name__ == "Abort":
        print("stepflow: interrupted", file=sys.stderr)
        return ExitStatus.CTRL_C
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        print(ctx.get_help())
        return ExitStatus.USAGE
    message = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
    hint = f' (see "{ctx.command_path} --help")' if ctx is not None else ""
    print(f"stepflow: error: {message}{hint}", file=sys.stderr)
    return int(getattr(exc, "exit_code", ExitStatus.USAGE))

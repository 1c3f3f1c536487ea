"""`stepflow ls`, `show` and `logs`: look back at recorded runs.

Read-only, except that a run found `running` whose stepflow process is gone is stored as
`abandoned` (stepflow.history.abandoned), quietly skipped when the store cannot be written.
The reading is stepflow.history's; cli/report.py formats what it returns.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stepflow.cli.common import JsonFlag, Storage, StreamName, app, open_reader, settings_for
from stepflow.cli.ls import LS_FLAGS
from stepflow.cli.signature import context_parameter, plain_values, with_flags
from stepflow.errors import ExitStatus
from stepflow.store.base import OPEN_STATUSES

RunId = Annotated[str, typer.Argument(metavar="[ID]", help="Run id, a unique prefix of it (4+ characters), or 'last'"
                                      " (the default).", show_default=False)]
LastName = Annotated[str | None, typer.Option("--name", "-n", help="With 'last': the newest run of this name (or glob).")]
NoColor = Annotated[bool, typer.Option("--no-color", help="No colours (also: NO_COLOR set).")]


def list_runs(ctx: typer.Context, **values: Any) -> None:
    """List recorded runs, newest first: status, steps done/total, duration, start (and host, when several)."""
    from stepflow.cli.ls import ls_command

    obj = ctx.obj or {}
    storage = obj.get("storage")
    ls_command(plain_values(values), storage=None if storage is None else str(storage), database=obj.get("database"))


app.command("ls", epilog="Example: stepflow ls --status failed --since 1d    (what failed since yesterday?)")(
    with_flags(list_runs, LS_FLAGS, [context_parameter()]))


@app.command(epilog="Example: stepflow show last    (or: stepflow show 3f2a --json)")
def show(
    ctx: typer.Context,
    run_id: RunId = "last",
    name: LastName = None,
    json_out: JsonFlag = False,
    no_color: NoColor = False,
    storage: Storage = None,
) -> None:
    """Show one run (the last without ID): steps, durations, errors, metadata, resources and artifacts."""
    import time

    from stepflow.cli.report import Printer, print_json, print_run_report
    from stepflow.history.runs import show_run

    with open_reader(settings_for(ctx, storage)) as store:
        detail = show_run(store, run_id, name=name)
        if not json_out:
            from stepflow.history.logs import step_tails

            failed = [s["index"] for s in detail["steps"] if s["status"] in ("failed", "abandoned")]
            detail["failed_tails"] = step_tails(store, detail["id"], failed[-3:])
    if json_out:
        print_json(detail)
    else:
        print_run_report(detail, printer=Printer.for_stdout(no_color=no_color), now=time.time())


@app.command(epilog="Examples: stepflow logs last --step build --stream stderr  ·  "
                    "stepflow logs 3f2a --follow (tail a running job from another terminal)")
def logs(
    ctx: typer.Context,
    run_id: RunId = "last",
    name: LastName = None,
    step: Annotated[str | None, typer.Option("--step", help="Only this step: its name, or its number as 'show' lists it (1 = first).")] = None,
    stream: Annotated[StreamName | None, typer.Option("--stream", help="Only stdout or stderr.")] = None,
    grep: Annotated[str | None, typer.Option("--grep", help="Only lines containing TEXT.", metavar="TEXT")] = None,
    timestamps: Annotated[bool, typer.Option("--timestamps", help="Prefix each line with the time it was read.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="The bytes as recorded, control characters included.")] = False,
    no_color: NoColor = False,
    storage: Storage = None,
) -> None:
    """Print a run's output lines (the last run's without ID) in the order they were read (stderr in dim red on a terminal)."""
    import sys

    from stepflow.cli.report import print_logs, wants_color
    from stepflow.history import abandoned
    from stepflow.history.logs import find_step, lines
    from stepflow.history.logs import follow as follow_run
    from stepflow.history.runs import resolve
    from stepflow.store.base import STREAM_NAMES

    streams = {v: k for k, v in STREAM_NAMES.items()}
    needle = grep.encode("utf-8", "surrogateescape") if grep else None  # the bytes as typed
    with open_reader(settings_for(ctx, storage)) as store:
        run = resolve(store, run_id, name=name)
        abandoned.notice(store, [run])
        following = follow and run.status in OPEN_STATUSES
        if following and sys.stderr.isatty():
            print(f"following run {run.id[:8]} ({run.status}); Ctrl-C to stop", file=sys.stderr)
        try:
            index = find_step(store, run, step, wait=follow) if step is not None else None
            chosen = streams[stream.value] if stream else None
            found = (follow_run(store, run.id, step_index=index, stream=chosen, grep=needle) if following
                     else lines(store, run.id, step_index=index, stream=chosen, grep=needle))
            tty = sys.stdout.isatty()
            names = {s.step_index: s.name for s in store.steps(run.id)} if tty and index is None else None
            ended = print_logs(found, timestamps=timestamps, raw=raw, color=tty and wants_color(no_color),
                               step_names=names)
            if following and ended is not None:
                # `logs --follow` ends as the run did: its status line, and its exit status
                code = ended.exit_code if ended.exit_code is not None else ExitStatus.ERROR
                if ended.status == "completed":
                    code = ended.exit_code or 0
                print(f"run {ended.id[:8]} {ended.status} (exit {ended.exit_code if ended.exit_code is not None else '-'})",
                      file=sys.stderr)
                raise typer.Exit(int(code))
        except KeyboardInterrupt:
            raise typer.Exit(ExitStatus.CTRL_C) from None
        except BrokenPipeError:
            _quiet_stdout()


def _quiet_stdout() -> None:
    """The reader went away (`stepflow logs ID | head`): no traceback, no flush error at exit."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)

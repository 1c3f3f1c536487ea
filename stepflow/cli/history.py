"""`stepflow ls`, `show` and `logs`: look back at recorded runs.

Read-only, except that a run found `running` whose stepflow process is gone is stored as
`abandoned` (stepflow.abandoned), quietly skipped when the store cannot be written.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from stepflow.cli.common import JsonFlag, Storage, StreamName, app, open_reader, settings_for
from stepflow.errors import ExitStatus
from stepflow.store.models import OPEN_STATUSES, RUN_STATUSES

RunId = Annotated[str, typer.Argument(metavar="ID", help="Run id, a unique prefix of it (4+ characters), or 'last'.",
                                      show_default=False)]
NoColor = Annotated[bool, typer.Option("--no-color", help="No colours (also: NO_COLOR set).")]


RunStatus = StrEnum("RunStatus", {status: status for status in RUN_STATUSES})  # type: ignore[misc]


@app.command("ls", epilog="Example: stepflow ls --status failed --since 1d    (what failed since yesterday?)")
def list_runs(
    ctx: typer.Context,
    status: Annotated[RunStatus | None, typer.Option("--status", help="Only runs with this status.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only runs whose name matches this glob, e.g. 'deploy*'.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only runs with this tag.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only runs started since 2h, 3d, 1w ago or a date (2025-08-01).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many runs.", min=1)] = 20,
    json_out: JsonFlag = False,
    no_color: NoColor = False,
    storage: Storage = None,
) -> None:
    """List recorded runs, newest first: status, steps done/total, duration, start."""
    import time

    from stepflow import abandoned, history
    from stepflow.printing import Printer, print_json, print_run_table
    from stepflow.store import RunQuery
    from stepflow.timeparse import since_timestamp

    query = RunQuery(status=status.value if status else None, name_glob=name, tag=tag,
                     since_ts=since_timestamp(since), limit=limit)
    with open_reader(settings_for(ctx, storage)) as store:
        gone = abandoned.sweep(store)
        runs = [r for r in store.find_runs(query) if not (r.id in gone and query.status in OPEN_STATUSES)]
        for run in runs:
            run.status = "abandoned" if run.id in gone else run.status
    if json_out:
        print_json([history.run_summary(r) for r in runs])
    else:
        print_run_table(runs, printer=Printer.for_stdout(no_color=no_color), now=time.time())


@app.command(epilog="Example: stepflow show last    (or: stepflow show 3f2a --json)")
def show(
    ctx: typer.Context,
    run_id: RunId,
    json_out: JsonFlag = False,
    no_color: NoColor = False,
    storage: Storage = None,
) -> None:
    """Show one run: steps, durations, errors, metadata, resources and artifacts."""
    import time

    from stepflow import abandoned, history
    from stepflow.maintenance import legacy_refresh
    from stepflow.printing import Printer, print_json, print_run_report

    with open_reader(settings_for(ctx, storage)) as store:
        run_row = legacy_refresh.refresh(store, store.resolve(run_id))  # an old server may still write
        abandoned.notice(store, [run_row])
        detail = history.run_detail(run_row, store.steps(run_row.id), store.artifacts(run_row.id))
    if json_out:
        print_json(detail)
    else:
        print_run_report(detail, printer=Printer.for_stdout(no_color=no_color), now=time.time())


@app.command(epilog="Examples: stepflow logs last --step build --stream stderr  ·  "
                    "stepflow logs 3f2a --follow (tail a running job from another terminal)")
def logs(
    ctx: typer.Context,
    run_id: RunId,
    step: Annotated[str | None, typer.Option("--step", help="Only this step: its name, or its number as 'show' lists it (1 = first).")] = None,
    stream: Annotated[StreamName | None, typer.Option("--stream", help="Only stdout or stderr.")] = None,
    grep: Annotated[str | None, typer.Option("--grep", help="Only lines containing TEXT.", metavar="TEXT")] = None,
    timestamps: Annotated[bool, typer.Option("--timestamps", help="Prefix each line with the time it was read.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="The bytes as recorded, control characters included.")] = False,
    no_color: NoColor = False,
    storage: Storage = None,
) -> None:
    """Print a run's output lines in the order they were read (stderr in dim red on a terminal)."""
    import sys

    from stepflow import abandoned
    from stepflow.maintenance import legacy_refresh
    from stepflow.printing import print_logs, step_index, wants_color
    from stepflow.store.models import STREAM_NAMES

    streams = {v: k for k, v in STREAM_NAMES.items()}
    with open_reader(settings_for(ctx, storage)) as store:
        run = legacy_refresh.refresh(store, store.resolve(run_id))  # an old server may still write
        abandoned.notice(store, [run])
        if follow and run.status in OPEN_STATUSES and sys.stderr.isatty():
            print(f"following run {run.id[:8]} ({run.status}); Ctrl-C to stop", file=sys.stderr)
        try:
            index = step_index(store, run, step, wait=follow) if step is not None else None
            print_logs(store, run, step_index=index, stream=streams[stream.value] if stream else None, grep=grep,
                       timestamps=timestamps, raw=raw, follow=follow,
                       color=sys.stdout.isatty() and wants_color(no_color))
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

"""`stepflow ls`, `show` and `logs`: look back at recorded runs. Read-only."""

from __future__ import annotations

from typing import Annotated

import typer

from stepflow.cli.common import JsonFlag, Storage, StreamName, app, open_reader, settings_for


@app.command("ls", epilog="Example: stepflow ls --status failed --since 1d")
def list_runs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only runs with this status.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only runs whose name matches this glob.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only runs with this tag.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only runs since 2h, 3d, or a date.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many runs.", min=1)] = 20,
    json_out: JsonFlag = False,
    storage: Storage = None,
) -> None:
    """List recorded runs, newest first."""
    from stepflow import history
    from stepflow.printing import print_json, print_run_table
    from stepflow.store import RunQuery
    from stepflow.timeparse import since_timestamp

    query = RunQuery(status=status, name_glob=name, tag=tag, since_ts=since_timestamp(since), limit=limit)
    with open_reader(settings_for(ctx, storage)) as store:
        runs = store.find_runs(query)
    if json_out:
        print_json([history.run_summary(r) for r in runs])
    else:
        print_run_table(runs)


@app.command(epilog="Example: stepflow show last")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="Run id, unique prefix, or 'last'.")],
    json_out: JsonFlag = False,
    storage: Storage = None,
) -> None:
    """Show one run: steps, durations, errors, metadata and artifacts."""
    from stepflow import history
    from stepflow.printing import print_json, print_run_report

    with open_reader(settings_for(ctx, storage)) as store:
        run_row = store.resolve(run_id)
        detail = history.run_detail(run_row, store.steps(run_row.id), store.artifacts(run_row.id))
    if json_out:
        print_json(detail)
    else:
        print_run_report(detail)


@app.command(epilog="Example: stepflow logs last --step build --stream stderr")
def logs(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="ID", help="Run id, unique prefix, or 'last'.")],
    step: Annotated[str | None, typer.Option("--step", help="Only this step (name or index).")] = None,
    stream: Annotated[StreamName | None, typer.Option("--stream", help="Only stdout or stderr.")] = None,
    grep: Annotated[str | None, typer.Option("--grep", help="Only lines containing TEXT.")] = None,
    timestamps: Annotated[bool, typer.Option("--timestamps", help="Prefix each line with its time.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="The bytes as recorded, control characters included.")] = False,
    storage: Storage = None,
) -> None:
    """Print a run's output lines, in the order they were read."""
    from stepflow.printing import print_logs

    with open_reader(settings_for(ctx, storage)) as store:
        print_logs(store, run_id, step=step, stream=stream.value if stream else None, grep=grep,
                   timestamps=timestamps, raw=raw)



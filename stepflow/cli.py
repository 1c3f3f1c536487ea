"""The `stepflow` command: parse, call the library, print, map errors to exit statuses."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from stepflow import __version__
from stepflow.config import RAISE_ERRORS, Settings, load_settings
from stepflow.errors import ExitStatus, StepflowError, UsageError

app = typer.Typer(
    name="stepflow",
    help="Run shell scripts with step markers; watch them live and keep their history in SQLite.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

Storage = Annotated[
    Path | None,
    typer.Option("--storage", help="Store folder (default: $STEPFLOW_STORAGE_PATH or the XDG data folder).",
                 show_default=False),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print plain JSON.")]


class Output(str, Enum):
    auto = "auto"
    live = "live"
    plain = "plain"
    quiet = "quiet"
    json = "json"


class MarkerMode(str, Enum):
    start = "start"
    anywhere = "anywhere"


class StreamName(str, Enum):
    stdout = "stdout"
    stderr = "stderr"


def settings_for(ctx: typer.Context, storage: Path | None) -> Settings:
    chosen = storage if storage is not None else (ctx.obj or {}).get("storage")
    return load_settings(storage=chosen)


def fail(message: str, status: int = ExitStatus.ERROR) -> NoReturn:
    print(f"stepflow: error: {message}", file=sys.stderr)
    raise typer.Exit(status)


def version_callback(value: bool) -> None:
    if value:
        print(f"stepflow {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    storage: Storage = None,
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = {"storage": storage}


@app.command(
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
    epilog="Example: stepflow run -n deploy -t prod -- ./deploy.sh --fast",
)
def run(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.",
                                                 show_default=False)],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Name of the run (default: the script's name).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag; repeat for more.")] = None,
    cwd: Annotated[Path | None, typer.Option("--cwd", help="Run the command in this folder.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Stop the command after SECONDS (exit 124).")] = None,
    kill_grace: Annotated[float, typer.Option("--kill-grace", help="Seconds between SIGTERM and SIGKILL.")] = 5.0,
    markers: Annotated[MarkerMode, typer.Option("--markers", help="Where a marker may stand in a line.")] = MarkerMode.start,
    stderr_markers: Annotated[bool, typer.Option("--stderr-markers", help="Also read markers from stderr.")] = False,
    output: Annotated[Output, typer.Option("--output", "-o", help="live on a terminal, plain elsewhere.")] = Output.auto,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours in the live view.")] = False,
    storage: Storage = None,
) -> None:
    """Run COMMAND, record its steps, output and artifacts, and exit with its exit status."""
    from stepflow.session import RunOptions, execute
    from stepflow.views import make_view, resolve_output

    settings = settings_for(ctx, storage)
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout {timeout:g} must be more than 0 seconds")
    if kill_grace < 0:
        raise UsageError(f"--kill-grace {kill_grace:g} must be 0 seconds or more")
    if cwd is not None and not cwd.is_dir():
        raise UsageError(f"--cwd {cwd}: no such folder")
    options = RunOptions(
        argv=list(command), name=name, tags=tuple(tag or ()), cwd=str(cwd) if cwd else None,
        timeout=timeout, kill_grace=kill_grace, anywhere=markers is MarkerMode.anywhere,
        stderr_markers=stderr_markers,
    )
    color = not no_color and "NO_COLOR" not in os.environ
    result = execute(options, settings, make_view(resolve_output(output.value), color=color))
    if result.error is not None:
        fail(str(result.error), result.exit_status)
    raise typer.Exit(result.exit_status)


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
    from stepflow.printing import print_json, print_run_table, since_timestamp
    from stepflow.store import RunQuery

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


def open_reader(settings: Settings):  # type: ignore[no-untyped-def]
    from stepflow.printing import reading

    return reading(settings)


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

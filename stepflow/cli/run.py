"""`stepflow run`: wrap a command and record it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from stepflow.cli.common import MarkerMode, Output, Storage, app, fail, settings_for
from stepflow.errors import UsageError


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
    output: Annotated[Output, typer.Option("--output", "-o", help="auto: live (a Rich view on stderr) on a terminal, plain elsewhere.")] = Output.auto,
    mask: Annotated[list[str] | None, typer.Option("--mask", help="Hide VALUE as *** in everything stored or shown; repeatable.")] = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours in the live view (also: NO_COLOR set).")] = False,
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
        stderr_markers=stderr_markers, masks=tuple(mask or ()),
    )
    color = not no_color and "NO_COLOR" not in os.environ
    result = execute(options, settings, make_view(resolve_output(output.value), color=color))
    if result.error is not None:
        fail(str(result.error), result.exit_status)
    raise typer.Exit(result.exit_status)



"""`stepflow run` for typer (help, completion, errors), built from the table in run_flags."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer

from stepflow.cli.common import app
from stepflow.cli.run_flags import RUN_FLAGS, run_command
from stepflow.cli.signature import context_parameter, plain_values, with_flags


def run(ctx: typer.Context, command: list[str], **values: Any) -> None:
    """Run COMMAND, record its steps, output and artifacts, and exit with its exit status."""
    obj = ctx.obj or {}
    raise typer.Exit(run_command(command, plain_values(values), storage=obj.get("storage"),
                                 database=obj.get("database")))


COMMAND = inspect.Parameter("command", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[
    list[str], typer.Argument(metavar="COMMAND...", help="The command and its arguments, after --.",
                              show_default=False)])
app.command(
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True,
                      "help_option_names": ["-h", "--help"]},
    epilog="Example: stepflow run -n deploy -t prod -- ./deploy.sh --fast",
)(with_flags(run, RUN_FLAGS, [context_parameter(), COMMAND]))

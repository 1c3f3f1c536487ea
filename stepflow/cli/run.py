"""`stepflow run` for typer (help, completion, errors), built from the table in run_flags."""

from __future__ import annotations

import inspect
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from stepflow.cli.common import app
from stepflow.cli.run_flags import RUN_FLAGS, FilePath, Flag, run_command


def run(ctx: typer.Context, command: list[str], **values: Any) -> None:
    """Run COMMAND, record its steps, output and artifacts, and exit with its exit status."""
    values = {k: (v.value if isinstance(v, StrEnum) else v) for k, v in values.items()}
    obj = ctx.obj or {}
    raise typer.Exit(run_command(command, values, storage=obj.get("storage"), database=obj.get("database")))


def _annotation(flag: Flag) -> tuple[Any, Any]:
    """The typer annotation and default for one flag of the table."""
    kind_of = Path if flag.kind is FilePath else flag.kind
    base: Any = StrEnum(flag.dest.title(), {c: c for c in flag.choices}) if flag.choices else kind_of
    default = base(flag.default) if flag.choices and flag.default is not None else flag.default
    if flag.repeat:
        kind: Any = list[base] | None  # type: ignore[valid-type]
    elif flag.default is None:
        kind = base | None
    else:
        kind = base
    return Annotated[kind, typer.Option(*flag.names, help=flag.help)], default


def _signature() -> inspect.Signature:
    """typer reads a command's options from its signature: give `run` one made from RUN_FLAGS."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter("command", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[
            list[str], typer.Argument(metavar="COMMAND...", help="The command and its arguments, after --.",
                                      show_default=False)]),
    ]
    for flag in RUN_FLAGS:
        annotation, default = _annotation(flag)
        params.append(inspect.Parameter(flag.dest, keyword, default=default, annotation=annotation))
    return inspect.Signature(params)


run.__signature__ = _signature()  # type: ignore[attr-defined]
run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}  # type: ignore[attr-defined]
app.command(
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True,
                      "help_option_names": ["-h", "--help"]},
    epilog="Example: stepflow run -n deploy -t prod -- ./deploy.sh --fast",
)(run)

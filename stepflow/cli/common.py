"""The typer app and what its commands share: option types, settings, error printing."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from stepflow import __version__
from stepflow.config import Settings, load_settings

app = typer.Typer(
    name="stepflow",
    help="Run shell scripts with step markers; watch them live and keep their history in SQLite.",
    epilog="Example: stepflow run -- bash deploy.sh, then stepflow ls, stepflow show last, stepflow logs last."
           "  Shell completion: stepflow --install-completion.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # -h as every Unix tool has it
)

Database = Annotated[
    str | None,
    typer.Option("--database", metavar="URL", show_default=False,
                 help="Database: a file path or sqlite:///PATH (default: $STEPFLOW_DATABASE_URL, else"
                      " <storage>/database/stepflow.db)."),
]
Storage = Annotated[
    Path | None,
    typer.Option("--storage", help="Store folder (default: $STEPFLOW_STORAGE_PATH or the XDG data folder).",
                 show_default=False),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print plain JSON.")]


class StreamName(StrEnum):
    stdout = "stdout"
    stderr = "stderr"


def settings_for(ctx: typer.Context, storage: Path | None) -> Settings:
    obj = ctx.obj or {}
    chosen = storage if storage is not None else obj.get("storage")
    return load_settings(storage=chosen, database=obj.get("database"))


def version_callback(value: bool) -> None:
    if value:
        print(f"stepflow {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    storage: Storage = None,
    database: Database = None,
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = {"storage": storage, "database": database}




def open_reader(settings: Settings):  # type: ignore[no-untyped-def]
    from stepflow.cli.report import reading

    return reading(settings)



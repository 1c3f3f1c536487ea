"""`stepflow export junit ID|last [-o FILE]`: a recorded run as a report other tools read. Read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stepflow.cli.common import Storage, app, open_reader, settings_for
from stepflow.cli.history import RunId

export_app = typer.Typer(help="Write a recorded run in another tool's format.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command(epilog="Example: stepflow export junit last -o report.xml")
def junit(
    ctx: typer.Context,
    run_id: RunId,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE (atomically) instead of stdout.")] = None,
    storage: Storage = None,
) -> None:
    """The run as JUnit XML: its steps as test cases, a failed step's error and output tail."""
    import sys

    from stepflow.errors import UsageError
    from stepflow.export.report import junit_report, write_atomically

    with open_reader(settings_for(ctx, storage)) as store:
        text = junit_report(store, run_id)
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            write_atomically(output, text)
        except OSError as exc:
            raise UsageError(f"-o {output}: cannot write: {exc.strerror or exc}") from None

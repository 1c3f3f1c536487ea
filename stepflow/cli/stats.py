"""`stepflow stats [NAME]`: how each job has been doing over its recent runs. Read-only."""

from __future__ import annotations

from typing import Annotated

import typer

from stepflow.cli.common import JsonFlag, Storage, app, open_reader, settings_for


@app.command(epilog="Examples: stepflow stats  ·  stepflow stats backup-db --json  ·  stepflow stats --recent 200")
def stats(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="Only the job (run name) NAME.", show_default=False)] = None,
    recent: Annotated[int, typer.Option("--recent", help="Look at this many newest runs of each job.", min=1)] = 50,
    json_out: JsonFlag = False,
    storage: Storage = None,
) -> None:
    """Per job: success rate, p50/p95 duration of the run and of each step, the current failure streak, steps that got slower."""
    from stepflow.cli.report import print_json
    from stepflow.cron import query
    from stepflow.cron.stats import render_stats
    from stepflow.errors import NotFoundError

    with open_reader(settings_for(ctx, storage)) as store:
        result = query.stats(store, name, recent=recent)
    if name is not None and not result["jobs"]:
        raise NotFoundError(f"no runs named {name!r}; see \"stepflow ls\"")
    if json_out:
        print_json(result)
    else:
        print(render_stats(result), end="")

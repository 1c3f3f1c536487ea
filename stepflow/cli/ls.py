"""`stepflow ls`: its options, declared once (see stepflow.cli.flags), and listing the runs.

`ls` is what people type at a prompt, and what scripts call in loops: its common forms are read
without typer (`parse_ls`); typer's `ls` (stepflow/cli/history.py) is built from the same table.
"""

from __future__ import annotations

from stepflow.cli.flags import FilePath, Flag, parse
from stepflow.store.base import RUN_STATUSES

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any

LS_FLAGS: tuple[Flag, ...] = (
    Flag("status", ("--status",), str, None, "Only runs with this status.", choices=RUN_STATUSES),
    Flag("name", ("--name",), str, None, "Only runs whose name matches this glob, e.g. 'deploy*'."),
    Flag("tag", ("--tag",), str, None, "Only runs with this tag."),
    Flag("host", ("--host",), str, None, "Only runs recorded on this host (its name as `show` gives it)."),
    Flag("since", ("--since",), str, None, "Only runs started since 2h, 3d, 1w ago or a date (2025-08-01)."),
    Flag("limit", ("--limit",), int, 20, "At most this many runs.", minimum=1),
    Flag("failed", ("--failed",), bool, False,
         "Only runs that did not succeed: failed, timed_out, cancelled, abandoned."),
    Flag("json_out", ("--json",), bool, False, "Print plain JSON."),
    Flag("no_color", ("--no-color",), bool, False, "No colours (also: NO_COLOR set)."),
    Flag("storage", ("--storage",), FilePath, None,
         "Store folder (default: $STEPFLOW_STORAGE_PATH or the XDG data folder)."),
)


def parse_ls(args: list[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(ls's option values, the global options' values) for `[GLOBAL OPTIONS] ls [OPTIONS]`,
    else None ("not sure": typer parses it and explains any problem)."""
    parsed = parse(args, "ls", LS_FLAGS)
    if parsed is None or parsed[2]:
        return None
    global_values, values, _ = parsed
    return values, global_values


def ls_command(values: dict[str, Any], *, storage: str | None = None, database: str | None = None) -> int:
    """List recorded runs, newest first; return the exit status.

    Raises:
        StepflowError: a bad option or an unreadable store.
    """
    import sys
    import time

    from stepflow.cli.report import Printer, print_json, print_run_table, store_exists
    from stepflow.config import load_settings
    from stepflow.history.runs import list_failed, list_runs
    from stepflow.store.base import RunQuery
    from stepflow.timeparse import since_timestamp

    if values["failed"] and values["status"] is not None:
        from stepflow.errors import UsageError

        raise UsageError("--failed and --status choose statuses both; give one")
    limit = values["limit"]
    query = RunQuery(status=values["status"], name_glob=values["name"], tag=values["tag"],
                     since_ts=since_timestamp(values["since"]), host=values["host"] or None,
                     limit=limit + 1)  # one more: was the list cut?
    chosen = values["storage"] if values["storage"] is not None else storage
    settings = load_settings(storage=chosen, database=database)
    runs = []
    # A fresh machine's store file is not there yet: no runs, an empty list, not an error
    # (a database URL that cannot be reached still is one).
    if settings.url is not None or store_exists(settings):
        from stepflow.cli.report import reading

        with reading(settings) as store:
            runs = list_failed(store, query) if values["failed"] else list_runs(store, query)
    cut = len(runs) > limit
    runs = runs[:limit]
    if values["json_out"]:
        from stepflow.history.detail import run_summary

        print_json([run_summary(r) for r in runs])
        return 0
    print_run_table(runs, printer=Printer.for_stdout(no_color=values["no_color"]), now=time.time())
    if cut:
        print(f"the newest {limit} runs shown; more match (--limit {limit * 2} for more)", file=sys.stderr)
    return 0

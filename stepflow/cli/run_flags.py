"""The options of `stepflow run`, declared once, and a parser that needs no typer.

`stepflow run -- true` is timed by users' cron jobs: importing typer alone costs ~50 ms
here, more than the rest of a run's start-up. So the common forms of a `run` command line
are read by `parse_run` below; anything it does not fully understand (help, a typo, a bad
value) returns None and goes to typer, whose `run` command is built from the same table
(stepflow/cli/run.py), so the two can never disagree on a name or a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTPUTS = ("auto", "live", "plain", "quiet", "json")
MARKER_MODES = ("start", "anywhere")


@dataclass(frozen=True, slots=True)
class Flag:
    """One option: its parameter name, its spellings, its type, default and help."""

    dest: str
    names: tuple[str, ...]
    kind: type  # str, float, Path or bool (a flag that takes no value)
    default: Any
    help: str
    repeat: bool = False  # may be given several times; the values become a list
    choices: tuple[str, ...] = ()


RUN_FLAGS: tuple[Flag, ...] = (
    Flag("name", ("--name", "-n"), str, None, "Name of the run (default: the script's name)."),
    Flag("tag", ("--tag", "-t"), str, None, "A tag; repeat for more.", repeat=True),
    Flag("cwd", ("--cwd",), Path, None, "Run the command in this folder."),
    Flag("timeout", ("--timeout",), float, None, "Stop the command after SECONDS (exit 124)."),
    Flag("kill_grace", ("--kill-grace",), float, 5.0, "Seconds between SIGTERM and SIGKILL."),
    Flag("markers", ("--markers",), str, "start", "Where a marker may stand in a line.",
         choices=MARKER_MODES),
    Flag("stderr_markers", ("--stderr-markers",), bool, False, "Also read markers from stderr."),
    Flag("output", ("--output", "-o"), str, "auto",
         "auto: live (a Rich view on stderr) on a terminal, plain elsewhere.", choices=OUTPUTS),
    Flag("mask", ("--mask",), str, None, "Hide VALUE as *** in everything stored or shown; repeatable.",
         repeat=True),
    Flag("no_color", ("--no-color",), bool, False, "No colours in the live view (also: NO_COLOR set)."),
    Flag("storage", ("--storage",), Path, None,
         "Store folder (default: $STEPFLOW_STORAGE_PATH or the XDG data folder)."),
)
_BY_NAME = {name: flag for flag in RUN_FLAGS for name in flag.names}


def parse_run(args: list[str]) -> tuple[list[str], dict[str, Any]] | None:
    """(command, option values) for `[--storage DIR] run [OPTIONS] [--] COMMAND...`, else None.

    None means "not sure": typer then parses the same arguments and explains any problem.
    """
    values: dict[str, Any] = {f.dest: ([] if f.repeat else f.default) for f in RUN_FLAGS}
    rest = list(args)
    if rest[:1] and rest[0].startswith("--storage"):  # the global --storage, before `run`
        if not _take(rest, values, allowed={"--storage"}):
            return None
    if rest[:1] != ["run"]:
        return None
    del rest[0]
    while rest and rest[0].startswith("-") and rest[0] != "-":
        if rest[0] == "--":
            del rest[0]
            break
        if not _take(rest, values):
            return None
    if not rest:
        return None
    return rest, values


def _take(rest: list[str], values: dict[str, Any], allowed: set[str] | None = None) -> bool:
    """Consume one option (and its value) from the front of `rest`; False if unsure."""
    word = rest.pop(0)
    name, has_value, inline = word.partition("=")
    flag = _BY_NAME.get(name)
    if flag is None or (allowed is not None and name not in allowed):
        return False
    if flag.kind is bool:
        if has_value:
            return False
        values[flag.dest] = True
        return True
    if not has_value:
        if not rest:
            return False
        inline = rest.pop(0)
    if flag.choices and inline not in flag.choices:
        return False
    try:
        value = flag.kind(inline)
    except ValueError:
        return False
    if flag.repeat:
        values[flag.dest].append(value)
    else:
        values[flag.dest] = value
    return True


def run_command(
    command: list[str], values: dict[str, Any], *, storage: Path | None = None, database: str | None = None
) -> int:
    """Validate the options, run COMMAND to its end, and return stepflow's exit status.

    Raises:
        StepflowError: a bad option or setting (nothing was run).
    """
    import math
    import sys

    from stepflow.config import color_wanted, load_settings
    from stepflow.errors import UsageError
    from stepflow.session import RunOptions, execute
    from stepflow.views import make_view, resolve_output

    settings = load_settings(storage=values["storage"] if values["storage"] is not None else storage,
                             database=database)
    timeout, grace, cwd = values["timeout"], values["kill_grace"], values["cwd"]
    if timeout is not None and not 0 < timeout < math.inf:
        raise UsageError(f"--timeout {timeout:g} must be a number of seconds more than 0")
    if not 0 <= grace < math.inf:
        raise UsageError(f"--kill-grace {grace:g} must be a number of seconds, 0 or more")
    if cwd is not None and not cwd.is_dir():
        raise UsageError(f"--cwd {cwd}: no such folder")
    options = RunOptions(
        argv=list(command), name=values["name"], tags=tuple(values["tag"] or ()),
        cwd=str(cwd) if cwd else None, timeout=timeout, kill_grace=grace,
        anywhere=str(values["markers"]) == "anywhere", stderr_markers=values["stderr_markers"],
        masks=tuple(values["mask"] or ()),
    )
    color = color_wanted(values["no_color"])
    result = execute(options, settings, make_view(resolve_output(str(values["output"])), color=color))
    if result.error is not None:
        print(f"stepflow: error: {result.error}", file=sys.stderr)
    if settings.log_level in ("info", "debug"):
        s = result.state
        print(f"stepflow: run {result.run_id} recorded in {settings.database_url}: {s.lines} lines,"
              f" {s.step_count} steps, {len(s.artifacts)} artifacts", file=sys.stderr)
    if settings.log_level == "debug" and result.written is not None:
        w = result.written
        print(f"stepflow: debug: {w.commits} commits, {w.writes} rows, {w.output_bytes} bytes of output",
              file=sys.stderr)
    return result.exit_status

"""The options of `stepflow run`, declared once (see stepflow.cli.flags), and running it.

`stepflow run -- true` is timed by users' cron jobs: the common forms of its command line are
read by `parse_run` without typer; typer's `run` (stepflow/cli/run.py) is built from the same
table, so the two can never disagree on a name or a default.
"""

from __future__ import annotations

import os

from stepflow.cli.flags import FilePath, Flag, by_name, parse

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any

OUTPUTS = ("auto", "live", "plain", "quiet", "json")
CI_CHOICES = ("none", "auto", "github", "gitlab", "buildkite", "teamcity")  # stepflow.ci's, unimported


# The cron options (issue 15; stepflow.run.cron wires them, stepflow.cron holds the parts). Each
# dest is stepflow.cron.settings.cron_options' keyword, and each has a STEPFLOW_* setting there.
# --lock always takes a NAME (an optional value would make `--lock ./job.sh` mean a lock named
# ./job.sh and no command): `--on-overlap MODE` alone locks on the run's name.
CRON_FLAGS: tuple[Flag, ...] = (
    Flag("lock", ("--lock",), str, None,
         "Hold the overlap lock NAME while running (STEPFLOW_LOCK); --on-overlap alone locks on the run's name."),
    Flag("overlap", ("--on-overlap",), str, None,
         "When the lock is held: skip (exit 0, recorded skipped), wait, wait=BOUND, kill, kill=GRACE."),
    Flag("retry", ("--retry",), str, None, "Try a failed command up to N more times, within one run."),
    Flag("retry_delay", ("--retry-delay",), str, None, "Pause between attempts (30s, 1m)."),
    Flag("retry_on", ("--retry-on",), str, None, "Retry only these exit statuses (1,2,75-78)."),
    Flag("on_failure", ("--on-failure",), str, None, "Run CMD (sh -c, the run as JSON on stdin) if the run fails."),
    Flag("on_success", ("--on-success",), str, None, "Run CMD if the run completes."),
    Flag("on_finish", ("--on-finish",), str, None, "Run CMD after every run."),
    Flag("on_streak", ("--on-streak",), str, None,
         "N:CMD: run CMD when the job has now failed N times in a row (once per streak)."),
    Flag("on_recover", ("--on-recover",), str, None, "Run CMD on the first success after such a streak."),
    Flag("hook_timeout", ("--hook-timeout",), str, None, "Stop a hook after this long (default 30s)."),
    Flag("ping_url", ("--ping",), str, None, "Ping URL healthchecks.io-style: /start, then /<exit status>."),
    Flag("prom_textfile", ("--prom-textfile",), str, None,
         "Rewrite DIR/stepflow.prom (node_exporter textfile metrics) after the run."),
)

RUN_FLAGS: tuple[Flag, ...] = (
    Flag("name", ("--name", "-n"), str, None, "Name of the run (default: the script's name)."),
    Flag("tag", ("--tag", "-t"), str, None, "A tag; repeat for more.", repeat=True),
    Flag("cwd", ("--cwd",), FilePath, None, "Run the command in this folder."),
    Flag("timeout", ("--timeout",), str, None, "Stop the command after this long (90, 10m, 1h30m; exit 124)."),
    Flag("kill_grace", ("--kill-grace",), str, "5", "How long between SIGTERM and SIGKILL (5, 30s, 1m)."),
    Flag("markers", ("--markers",), str, "auto",
         "Marker dialects, comma separated: auto (stepflow's markers, plus the dialect of the CI this"
         " runs under), start (stepflow's markers open a line), anywhere (they may follow other text),"
         " or a dialect name (stepflow, github, gitlab, buildkite, teamcity)."),
    Flag("stderr_markers", ("--stderr-markers",), bool, False, "Also read markers from stderr."),
    Flag("output", ("--output", "-o"), str, "auto",
         "auto: live (a Rich view on stderr) on a terminal, plain elsewhere.", choices=OUTPUTS),
    Flag("mask", ("--mask",), str, None, "Hide VALUE as *** in everything stored or shown; repeatable.",
         repeat=True),
    Flag("no_color", ("--no-color",), bool, False, "No colours in the live view (also: NO_COLOR set)."),
    Flag("ci", ("--ci",), str, "auto",
         "Print stepflow's steps in a CI's language on stderr, in plain output: auto (the CI the"
         " environment names, none outside CI), none, github (also $GITHUB_STEP_SUMMARY), gitlab,"
         " buildkite, teamcity.", choices=CI_CHOICES),
    Flag("junit", ("--junit",), FilePath, None,
         "Write the run as a JUnit XML report to FILE at its end (also when it failed)."),
    Flag("pty", ("--pty",), bool, False,
         "Give the command a pseudo-terminal, so it line-buffers and keeps its colours; its stdout"
         " and stderr become one stream (on stdout); the store keeps the text without escapes."),
    Flag("storage", ("--storage",), FilePath, None,
         "Store folder (default: $STEPFLOW_STORAGE_PATH or the XDG data folder)."),
    *CRON_FLAGS,
)
_BY_NAME = by_name(RUN_FLAGS)


def parse_run(args: list[str]) -> tuple[list[str], dict[str, Any], dict[str, Any]] | None:
    """(command, run's option values, the global options' values) for
    `[--storage DIR] [--database URL] run [OPTIONS] [--] COMMAND...`, else None.

    None means "not sure": typer then parses the same arguments and explains any problem.
    """
    parsed = parse(args, "run", RUN_FLAGS)
    if parsed is None or not parsed[2]:
        return None
    global_values, values, command = parsed
    return command, values, global_values


def check_run_words(args: list[str]) -> None:
    """Refuse `stepflow run --tiemout 5 ./job.sh` before anything runs: a word that looks like
    an option, before the command and before `--`, that `run` does not know (typer would take
    it for the command). Only on the slow path (parse_run said "not sure"): the common forms cost nothing.

    Raises:
        UsageError: the nearest option is suggested; nothing was run or recorded.
    """
    if "run" not in args:
        return
    rest = args[args.index("run") + 1 :]
    while rest:
        word = rest.pop(0)
        if word == "--":
            break
        if not word.startswith("-") or word == "-":
            return
        if word in ("--help", "-h"):
            return
        name = word.partition("=")[0]
        flag = _BY_NAME.get(name if name.startswith("--") else name[:2])
        if flag is None:
            import difflib

            names = [n for n in _BY_NAME if n.startswith("--")]
            near = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise _usage(f"stepflow run has no option {name!r}{hint} (a command that starts with '-'"
                         " goes after --: stepflow run -- CMD)")
        attached = "=" in word or (not name.startswith("--") and len(word) > 2)
        if flag.kind is not bool and not attached and rest:
            rest.pop(0)


def _usage(message: str) -> Exception:
    from stepflow.errors import UsageError

    return UsageError(message)


def run_command(
    command: list[str], values: dict[str, Any], *, storage: str | os.PathLike[str] | None = None,
    database: str | None = None,
) -> int:
    """Validate the options, run COMMAND to its end, and return stepflow's exit status.

    Raises:
        StepflowError: a bad option or setting (nothing was run).
    """
    import sys

    from stepflow.config import load_settings
    from stepflow.errors import UsageError
    from stepflow.run.execute import RunOptions, execute
    from stepflow.views import Terminal, make_view, resolve_output

    if " " in command[0] and not os.path.exists(command[0]):
        import shutil

        if shutil.which(command[0]) is None:  # `stepflow run "./x.sh --fast"`: one word, no such program
            raise UsageError(f"no command named {command[0]!r}: give the command and its arguments as"
                             f" separate words: stepflow run -- {command[0]}")
    settings = load_settings(storage=values["storage"] if values["storage"] is not None else storage,
                             database=database)
    from stepflow.timeparse import parse_duration

    cwd = values["cwd"]
    timeout = None if values["timeout"] is None else parse_duration(str(values["timeout"]), option="--timeout")
    grace = parse_duration(str(values["kill_grace"]), option="--kill-grace")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout {values['timeout']!r} must be more than 0 seconds")
    if cwd is not None and not os.path.isdir(cwd):
        raise UsageError(f"--cwd {cwd}: no such folder")
    terminal = Terminal.detect(no_color=values["no_color"])
    mode = resolve_output(str(values["output"]), terminal)
    options = RunOptions(
        argv=list(command), name=values["name"], tags=tuple(values["tag"] or ()),
        cwd=os.fspath(cwd) if cwd else None, timeout=timeout, kill_grace=grace,
        markers=str(values["markers"]), stderr_markers=values["stderr_markers"],
        masks=tuple(values["mask"] or ()),
        ci=str(values["ci"]) if mode == "plain" else "none", pty=bool(values["pty"]),
    )
    from stepflow.run.cron import options_from

    cron = options_from(values, os.environ)  # before anything runs: a bad value is a usage error
    view = make_view(mode, terminal, hints=lambda name: _hints(settings, name), artifacts=settings.artifacts_dir)
    if cron is None:
        result = execute(options, settings, view)
    else:
        from stepflow.run.cron import execute_cron

        result, warnings = execute_cron(options, cron, settings, view, hook_stdout=2 if mode == "json" else None)
        if result.state.status == "skipped" and mode != "quiet":
            print(f"stepflow: run {result.run_id[:8]} {result.state.errors[0]}", file=sys.stderr)
        for warning in warnings:
            print(f"stepflow: warning: {warning}", file=sys.stderr)
    if values["junit"] is not None:
        from pathlib import Path

        from stepflow.export.report import write_junit

        if problem := write_junit(settings, result.run_id, Path(values["junit"])):
            print(f"stepflow: warning: {problem}", file=sys.stderr)
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


def _hints(settings: Any, name: str) -> Any:
    """ETA hints from earlier runs of `name`, for the live view (read on its own thread)."""
    from stepflow.hints import load_hints

    return load_hints(settings, name)

"""The typer-free parser of `stepflow run` reads what typer would, or steps aside."""

from __future__ import annotations

import pytest

from stepflow.cli.run_flags import RUN_FLAGS, parse_run
from tests.conftest import StepflowRunner

DEFAULTS = {f.dest: ([] if f.repeat else f.default) for f in RUN_FLAGS}


@pytest.mark.parametrize("args, command, changed", [
    (["run", "--", "true"], ["true"], {}),
    (["run", "true", "-n", "x"], ["true", "-n", "x"], {}),  # options after the command are its own
    (["run", "-n", "nightly", "-t", "a", "--tag=b", "--", "make"], ["make"], {"name": "nightly", "tag": ["a", "b"]}),
    (["run", "--timeout", "2.5", "--kill-grace=0", "--", "x"], ["x"], {"timeout": "2.5", "kill_grace": "0"}),
    (["run", "--timeout", "1h30m", "--", "x"], ["x"], {"timeout": "1h30m"}),
    (["run", "--markers", "anywhere", "--stderr-markers", "-o", "json", "--", "x"], ["x"],
     {"markers": "anywhere", "stderr_markers": True, "output": "json"}),
    (["run", "--storage", "/s", "--cwd", "/w", "--mask", "pw", "--no-color", "x"], ["x"],
     {"storage": "/s", "cwd": "/w", "mask": ["pw"], "no_color": True}),
    (["run", "--", "--weird-command"], ["--weird-command"], {}),
])
def test_common_command_lines(args: list[str], command: list[str], changed: dict[str, object]) -> None:
    assert parse_run(args) == (command, {**DEFAULTS, **changed}, {"storage": None, "database": None})


def test_global_options_before_run() -> None:
    parsed = parse_run(["--storage", "/s", "--database=sqlite:///x.db", "run", "-n", "a", "true"])
    assert parsed == (["true"], {**DEFAULTS, "name": "a"}, {"storage": "/s", "database": "sqlite:///x.db"})


@pytest.mark.parametrize("args", [
    ["run"], ["run", "--"], ["run", "--help"], ["--help"], ["ls"],
    ["run", "--output", "fancy", "x"], ["run", "-nfoo", "x"], ["run", "--stderr-markers=yes", "x"],
    ["run", "--name"], ["--version"], ["run", "--unknown", "x"],
])
def test_anything_unusual_goes_to_typer(args: list[str]) -> None:
    assert parse_run(args) is None


def test_typer_explains_what_the_fast_parser_declines(stepflow: StepflowRunner) -> None:
    result = stepflow("run", "--timeout", "soon", "--", "true")
    assert result.returncode == 2
    assert b"soon" in result.stderr
    assert stepflow("run", "--help").returncode == 0


def test_typer_path_runs_the_same_command(stepflow: StepflowRunner) -> None:
    result = stepflow("run", "-nshort-form", "--output", "quiet", "--", "bash", "-c", "exit 3")
    assert result.returncode == 3
    assert b'"name": "short-form"' in stepflow("show", "last", "--json").stdout


@pytest.mark.parametrize("args, line", [
    (["run"], "stepflow: error: Missing argument 'COMMAND...'. (see \"stepflow run --help\")"),
    (["ls", "--limit", "0"], "stepflow: error: Invalid value for '--limit': 0 is not in the range x>=1. (see \"stepflow ls --help\")"),
    (["nosuchcmd"], "stepflow: error: No such command 'nosuchcmd'. (see \"stepflow --help\")"),
])
def test_usage_errors_are_one_line_with_status_2(stepflow: StepflowRunner, args: list[str], line: str) -> None:
    result = stepflow(*args)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [line]


def test_stepflow_alone_shows_help(stepflow: StepflowRunner) -> None:
    result = stepflow()
    assert result.returncode == 2 and b"Usage: stepflow" in result.stdout


def test_timeouts_take_every_duration_form(stepflow: StepflowRunner) -> None:
    """`--timeout 2s` ends a long command (124) as `--timeout 2` would; `--kill-grace 1s` too."""
    result = stepflow("run", "-o", "quiet", "--timeout", "0.5s", "--kill-grace", "1s", "--", "sleep", "30")
    assert result.returncode == 124
    bad = stepflow("run", "--timeout", "10 minutes", "--", "true")
    assert (bad.returncode, bad.stderr) == (2, b"stepflow: error: --timeout '10 minutes' is not a duration (90, 90s, 10m, 1h30m, 2d)\n")

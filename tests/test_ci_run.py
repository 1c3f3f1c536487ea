"""`run --ci`, `run --junit` and `stepflow export junit`, through the real CLI and a real store."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml

from tests.conftest import StepflowRunner, py

SCRIPT = ("print('STEP_START:build'); print('compiling'); print('STEP_START:test');"
          "print('assert 1 == 2'); print('STEP_ERROR:3 tests failed'); raise SystemExit(3)")
# Outside any CI, whatever the machine running the tests says
NO_CI = {"GITHUB_ACTIONS": "", "GITLAB_CI": "", "BUILDKITE": "", "TEAMCITY_VERSION": ""}


def ci_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NO_CI and k != "GITHUB_STEP_SUMMARY"}
    return {**env, **extra}


def run_clean(stepflow: StepflowRunner, *args: str, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """stepflow with exactly `env` (no CI variable leaking in from the test machine)."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "stepflow", *args], capture_output=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout, done.stderr


def test_github_groups_errors_and_the_step_summary(stepflow: StepflowRunner, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    code, out, err = run_clean(stepflow, "run", "-n", "deploy", "--", *py(SCRIPT),
                               env=ci_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary)))
    assert code == 3
    lines = err.decode().splitlines()
    assert lines.count("::group::build") == 1 and lines.count("::group::test") == 1
    assert lines.count("::endgroup::") == 2
    assert "::error title=step test failed::3 tests failed" in lines
    # the command's stdout is untouched: the CI's lines are on stderr only
    assert b"::" not in out and out.startswith(b"STEP_START:build\n")
    text = summary.read_text()
    assert text.startswith("earlier step\n### deploy\n")  # appended, as GitHub asks
    assert "| 1 | build | ✅ completed |" in text and "| 2 | test | ❌ failed |" in text
    assert "3 tests failed" in text and "exit status 3" in text


def test_no_ci_lines_outside_ci_or_with_ci_none(stepflow: StepflowRunner, tmp_path: Path) -> None:
    code, _out, err = run_clean(stepflow, "run", "--", *py(SCRIPT), env=ci_env())
    assert code == 3 and b"::group::" not in err and b"section_start" not in err
    code, _out, err = run_clean(stepflow, "run", "--ci", "none", "--", *py(SCRIPT), env=ci_env(GITHUB_ACTIONS="true"))
    assert code == 3 and b"::group::" not in err
    code, _out, err = run_clean(stepflow, "run", "--ci", "github", "--", *py(SCRIPT), env=ci_env())
    assert code == 3 and b"::group::build" in err  # named: spoken outside CI too


def test_quiet_output_prints_no_ci_lines(stepflow: StepflowRunner) -> None:
    code, _out, err = run_clean(stepflow, "run", "-o", "quiet", "--", *py(SCRIPT), env=ci_env(GITHUB_ACTIONS="true"))
    assert code == 3 and b"::group::" not in err


def test_an_unwritable_step_summary_is_a_warning_not_a_changed_status(stepflow: StepflowRunner, tmp_path: Path) -> None:
    code, _out, err = run_clean(stepflow, "run", "--", *py("print('STEP_START:a')"),
                                env=ci_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(tmp_path / "no" / "x.md")))
    assert code == 0 and b"step summary not written" in err


def test_an_unknown_ci_is_a_usage_error(stepflow: StepflowRunner, db_path: Path) -> None:
    result = stepflow("run", "--ci", "jenkins", "--", "true")
    assert result.returncode == 2 and b"jenkins" in result.stderr and b"Traceback" not in result.stderr
    assert not db_path.exists()


def _read_back(stepflow: StepflowRunner, tmp_path: Path, log: bytes, dialect: str) -> list[tuple[object, ...]]:
    """Feed a CI log back through `--markers DIALECT` and return the steps it recorded."""
    path = tmp_path / f"{dialect}.log"
    path.write_bytes(log)
    back = stepflow("run", "-n", "readback", "--markers", dialect, "--ci", "none", "--", "cat", str(path),
                    env=NO_CI)
    assert back.returncode == 0, back.stderr
    shown = json.loads(stepflow("show", "last", "--json").stdout)
    assert shown["name"] == "readback"
    return [(step["name"], step["status"]) for step in shown["steps"]]


@pytest.mark.parametrize("variable, dialect", [("GITHUB_ACTIONS", "github"), ("GITLAB_CI", "gitlab"),
                                               ("BUILDKITE", "buildkite"), ("TEAMCITY_VERSION", "teamcity")])
def test_each_ci_log_reads_back_as_the_same_steps(stepflow: StepflowRunner, tmp_path: Path,
                                                  variable: str, dialect: str) -> None:
    code, _out, err = run_clean(stepflow, "run", "--", *py(SCRIPT), env=ci_env(**{variable: "true"}))
    assert code == 3
    emitted = b"\n".join(line for line in err.split(b"\n") if not line.startswith(b"["))  # not stepflow's own
    steps = _read_back(stepflow, tmp_path, emitted + b"\n", dialect)
    assert [name for name, _ in steps] == ["build", "test"]
    # GitLab and Buildkite logs have no failure marker (a red line, `^^^ +++` expands the group):
    # there the job's exit status says the step failed
    if dialect in ("github", "teamcity"):
        assert [status for _, status in steps] == ["completed", "failed"]


def test_gitlab_sections_carry_their_times(stepflow: StepflowRunner) -> None:
    import time

    before = int(time.time())
    code, _out, err = run_clean(stepflow, "run", "--", *py(SCRIPT), env=ci_env(GITLAB_CI="true"))
    assert code == 3
    starts = [line for line in err.split(b"\n") if b"section_start:" in line]
    ends = [line for line in err.split(b"\n") if b"section_end:" in line]
    assert len(starts) == 2 and len(ends) == 2
    assert starts[0].startswith(b"\x1b[0Ksection_start:") and starts[0].endswith(b"\r\x1b[0Kbuild")
    after = int(time.time()) + 1
    stamps = [int(line.split(b":")[1]) for line in starts + ends]
    assert all(before <= stamp <= after for stamp in stamps) and stamps == sorted(stamps)
    assert b"\x1b[31;1mstep test failed: 3 tests failed\x1b[0m" in err


def test_buildkite_and_teamcity_speak_their_own_language(stepflow: StepflowRunner) -> None:
    _code, _out, err = run_clean(stepflow, "run", "--", *py(SCRIPT), env=ci_env(BUILDKITE="true"))
    lines = err.decode().splitlines()
    assert "--- build" in lines and "--- test" in lines and "^^^ +++" in lines
    _code, _out, err = run_clean(stepflow, "run", "--", *py(SCRIPT), env=ci_env(TEAMCITY_VERSION="2024.1"))
    text = err.decode()
    assert "##teamcity[blockOpened name='build' description='step 1']" in text
    assert "##teamcity[buildProblem description='step test failed: 3 tests failed' identity='stepflow-step-2']" in text
    assert text.count("##teamcity[blockClosed") == 2


# -- JUnit ------------------------------------------------------------------------------------


def _cases(path: Path) -> dict[str, object]:
    xml = JUnitXml.fromfile(str(path))
    return {case.name: case for suite in xml for case in suite}


def test_run_junit_writes_a_report_even_when_the_run_failed(stepflow: StepflowRunner, tmp_path: Path) -> None:
    report = tmp_path / "out" / "junit.xml"
    report.parent.mkdir()
    result = stepflow("run", "-n", "deploy", "--junit", str(report), "--", *py(SCRIPT), env=NO_CI)
    assert result.returncode == 3
    cases = _cases(report)
    assert set(cases) == {"build", "test"}
    failed = cases["test"]
    assert isinstance(failed.result[0], Failure) and failed.result[0].message == "3 tests failed"  # type: ignore[attr-defined]
    assert "assert 1 == 2" in (failed.system_out or "")  # type: ignore[attr-defined]
    assert not cases["build"].result  # type: ignore[attr-defined]
    assert [p.name for p in report.parent.iterdir()] == ["junit.xml"]  # no temporary file left


def test_an_unwritable_junit_file_is_a_warning(stepflow: StepflowRunner, tmp_path: Path) -> None:
    result = stepflow("run", "--junit", str(tmp_path / "missing" / "j.xml"), "--", "true", env=NO_CI)
    assert result.returncode == 0
    assert b"stepflow: warning: JUnit report not written" in result.stderr and b"Traceback" not in result.stderr
    result = stepflow("run", "--junit", str(tmp_path / "missing" / "j.xml"), "--", "false", env=NO_CI)
    assert result.returncode == 1


def test_export_junit_prints_or_writes_the_same_report(stepflow: StepflowRunner, tmp_path: Path) -> None:
    first = tmp_path / "first.xml"
    assert stepflow("run", "--junit", str(first), "--", *py(SCRIPT), env=NO_CI).returncode == 3
    shown = stepflow("export", "junit", "last")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == first.read_bytes()
    run_id = json.loads(stepflow("show", "last", "--json").stdout)["id"]
    written = tmp_path / "again.xml"
    assert stepflow("export", "junit", run_id[:8], "-o", str(written)).returncode == 0
    assert written.read_bytes() == first.read_bytes()
    assert set(_cases(written)) == {"build", "test"}


def test_export_junit_of_no_run_is_a_clear_error(stepflow: StepflowRunner, tmp_path: Path) -> None:
    assert stepflow("run", "--", "true", env=NO_CI).returncode == 0
    missing = stepflow("export", "junit", "ffffffff")
    assert missing.returncode != 0 and missing.stderr.startswith(b"stepflow: error: ")
    blocked = stepflow("export", "junit", "last", "-o", str(tmp_path / "nope" / "x.xml"))
    assert blocked.returncode == 2 and b"cannot write" in blocked.stderr and b"Traceback" not in blocked.stderr


def test_a_plain_run_outside_ci_imports_no_emitter(storage: Path) -> None:
    """--ci auto decides "no CI" without importing stepflow.ci; under a CI only its emitter loads."""
    import subprocess

    code = ("import sys\nfrom stepflow.cli import main\n"
            "status = main(['run', '-o', 'plain', '--', 'true'])\n"
            "print(' '.join(sorted(sys.modules)))\nsys.exit(status)")
    outside = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60,
                             env=ci_env()).stdout.decode().split()
    assert "stepflow.run.execute" in outside and not {m for m in outside if m.startswith("stepflow.ci")}
    inside = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60,
                            env=ci_env(GITLAB_CI="true")).stdout.decode().split()
    assert "stepflow.ci.gitlab" in inside and "stepflow.ci.github" not in inside


def test_steps_the_command_opens_in_the_cis_language_are_not_printed_twice(stepflow: StepflowRunner,
                                                                           tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    script = ("print('STEP_START:mine'); print('::group::theirs'); print('inside'); print('::endgroup::');"
              "print('STEP_START:last')")
    code, out, err = run_clean(stepflow, "run", "--", *py(script),
                               env=ci_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary)))
    assert code == 0
    assert out.count(b"::group::theirs") == 1  # the command's own, passed through
    lines = err.decode().splitlines()
    assert "::group::mine" in lines and "::group::last" in lines and "::group::theirs" not in lines
    assert lines.count("::endgroup::") == 2
    assert "| theirs |" in summary.read_text()  # the step is still in the summary

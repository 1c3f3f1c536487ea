"""What a cron user gets in mail and a CI log gets: stepflow in a cron-like environment
(env -i, a minimal PATH, no HOME, no TERM), its stdout and stderr real pipes (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MINIMAL_PATH = "/usr/bin:/bin"


def cron(storage: Path, *args: str, merged: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """`stepflow ARGS` as cron runs it: env -i, PATH=/usr/bin:/bin, no HOME, no TERM, stdin
    /dev/null; with `merged`, stderr into stdout (2>&1, as cron's mail and CI logs have it)."""
    argv = ["env", "-i", f"PATH={MINIMAL_PATH}", f"STEPFLOW_STORAGE_PATH={storage}",
            sys.executable, "-m", "stepflow", *args]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if merged else subprocess.PIPE, timeout=timeout,
                          cwd=Path(__file__).parent.parent)


def test_quiet_on_failure_prints_the_failing_step_and_everything_after_it(storage: Path) -> None:
    script = ('echo STEP_START:prep; echo prepared; echo STEP_START:a; echo "doing a"; echo STEP_ERROR:a broke;'
              ' echo "FATAL: rollback also failed" >&2; echo "cleanup done"; exit 1')
    result = cron(storage, "run", "--output", "quiet", "--", "bash", "-c", script, merged=True)
    assert result.returncode == 1
    out = result.stdout.decode()
    assert "prepared" not in out  # the step that passed stays quiet, as chronic would not
    # (stdout and stderr are two pipes: their relative order is the order they were read in)
    assert out.index("doing a") < out.index("cleanup done") and "FATAL: rollback also failed" in out
    assert "step 2 'a' failed" in out and "failed (exit 1" in out


def test_quiet_on_success_says_nothing(storage: Path) -> None:
    result = cron(storage, "run", "--output", "quiet", "--", "bash", "-c", "echo STEP_START:a; echo hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_plain_with_both_streams_in_one_file_keeps_step_lines_in_order(storage: Path) -> None:
    script = r"printf 'STEP_START:one\nout-one\nSTEP_START:two\nout-two\n'"  # one write, one read
    result = cron(storage, "run", "--output", "plain", "--", "bash", "-c", script, merged=True)
    assert result.returncode == 0
    lines = [line.split("stepflow: ", 1)[-1] for line in result.stdout.decode().splitlines()]
    order = [line for line in lines if line.startswith(("STEP_START", "out-", "step "))]
    assert [line.split(" in ")[0] for line in order] == [
        "STEP_START:one", "step 1 'one' started", "out-one", "STEP_START:two", "step 1 'one' completed",
        "step 2 'two' started", "out-two", "step 2 'two' completed"]

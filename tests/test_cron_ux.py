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


def test_after_kill_9_show_agrees_with_logs_and_the_step_is_not_running(storage: Path) -> None:
    import signal
    import time

    script = "echo STEP_START:work; echo one; echo two; echo three; sleep 60"
    proc = subprocess.Popen(["env", "-i", f"PATH={MINIMAL_PATH}", f"STEPFLOW_STORAGE_PATH={storage}",
                             sys.executable, "-m", "stepflow", "run", "-n", "killed", "-o", "quiet", "--",
                             "bash", "-c", script], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while cron(storage, "logs", "last").stdout.count(b"\n") < 3:  # written while it runs
            assert time.monotonic() < deadline, "the output never reached the store"
            time.sleep(0.1)
        running = cron(storage, "show", "last").stdout.decode()
        assert "3 lines" in running, running  # while the run goes on, as `logs` has them
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    shown = cron(storage, "show", "last").stdout.decode()
    assert "abandoned" in shown and "3 lines" in shown, shown
    assert not any("running" in line for line in shown.splitlines() if "work" in line), shown
    assert cron(storage, "logs", "last").stdout == b"one\ntwo\nthree\n"


def test_auto_in_cron_is_plain_and_never_loses_output(storage: Path) -> None:
    # The decision README documents: `auto` off a terminal is plain (safe for pipes and CI);
    # a crontab says -o quiet to mail only failures.
    result = cron(storage, "run", "--", "bash", "-c", "echo STEP_START:a; echo hello")
    assert result.returncode == 0 and result.stdout == b"STEP_START:a\nhello\n"
    assert b"step 1 'a' completed" in result.stderr and b"\x1b[" not in result.stderr


def test_history_ergonomics_last_by_default_by_name_failed_and_the_cut(storage: Path) -> None:
    jobs = [("nightly", "echo night-1"), ("hourly", "echo hour-1; exit 3"), ("nightly", "echo night-2; exit 1"),
            ("hourly", "echo hour-2")]
    for name, script in jobs:
        cron(storage, "run", "-o", "quiet", "-n", name, "--", "bash", "-c", script)
    assert cron(storage, "logs").stdout == b"hour-2\n"  # no id: the last run
    assert cron(storage, "show").stdout.split(b"\n")[0].endswith(b"hourly")
    assert cron(storage, "logs", "last", "-n", "nightly").stdout == b"night-2\n"  # last of a name
    shown = cron(storage, "show", "last", "--name", "nightly").stdout.decode()
    assert "nightly" in shown.splitlines()[0] and "exit 1" in shown
    missing = cron(storage, "show", "last", "-n", "weekly")
    assert missing.returncode != 0 and b"no run named 'weekly'" in missing.stderr
    failed = cron(storage, "ls", "--failed", "--json")
    import json

    assert [r["name"] for r in json.loads(failed.stdout)] == ["nightly", "hourly"]
    cut = cron(storage, "ls", "--limit", "3")
    assert cut.returncode == 0 and cut.stdout.count(b"\n") == 4  # the header and 3 runs
    assert b"the newest 3 runs shown; more match (--limit 6 for more)" in cut.stderr
    assert cron(storage, "ls", "--limit", "4").stderr == b""


def test_a_mistyped_option_is_a_usage_error_and_nothing_is_recorded(storage: Path, tmp_path: Path) -> None:
    job = tmp_path / "job.sh"
    job.write_text("#!/bin/sh\necho ran > \"$0.ran\"\n")
    job.chmod(0o755)
    result = cron(storage, "run", "--tiemout", "5", str(job))
    assert result.returncode == 2
    assert result.stderr.decode().startswith("stepflow: error: stepflow run has no option '--tiemout';"
                                             " did you mean --timeout?")
    assert not (tmp_path / "job.sh.ran").exists() and not storage.exists()  # not run, not recorded
    assert cron(storage, "run", "-o", "quiet", "--bogus=1", "--", str(job)).returncode == 2
    assert cron(storage, "run", "-o", "quiet", "--", "sh", "-c", "exit 0").returncode == 0  # after --: the command's
    split = cron(storage, "run", "-o", "quiet", f"{job} --fast")
    assert split.returncode == 2 and b"separate words: stepflow run -- " in split.stderr


def test_dash_h_is_help(storage: Path) -> None:
    for args in (["-h"], ["run", "-h"], ["ls", "-h"]):
        result = cron(storage, *args)
        assert result.returncode == 0 and b"Usage: stepflow" in result.stdout, args
    assert not storage.exists()


def test_logs_follow_ends_with_the_status_line_and_exit_status_and_show_gives_failed_lines(storage: Path) -> None:
    import time

    proc = subprocess.Popen(["env", "-i", f"PATH={MINIMAL_PATH}", f"STEPFLOW_STORAGE_PATH={storage}",
                             sys.executable, "-m", "stepflow", "run", "-o", "quiet", "--", "bash", "-c",
                             "echo STEP_START:a; echo first; read x; echo 'it broke' >&2; exit 5"],
                            stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while cron(storage, "logs").stdout != b"first\n":
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        follower = subprocess.Popen(["env", "-i", f"PATH={MINIMAL_PATH}", f"STEPFLOW_STORAGE_PATH={storage}",
                                     sys.executable, "-m", "stepflow", "logs", "--follow"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin is not None and follower.stdout is not None
        first = follower.stdout.readline()  # it is following (the run waits for us): now let it end
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        rest, err = follower.communicate(timeout=60)
        out = first + rest
    finally:
        proc.wait(timeout=60)
    assert follower.returncode == 5  # the run's exit status
    assert out == b"first\nit broke\n" and err.decode().splitlines()[-1].endswith("failed (exit 5)")
    shown = cron(storage, "show").stdout.decode()
    assert "last lines of step 1 (a, failed)" in shown and "it broke" in shown.split("last lines of step 1")[1]

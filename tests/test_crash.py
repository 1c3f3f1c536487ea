"""stepflow killed at any moment: the store stays intact, and the command does not run on unwatched."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import py, query, wait_for

STEADY = "import time\nfor i in range(100000):\n  print(f'STEP_START:s{i}' if i % 50 == 0 else f'line {i}', flush=True); time.sleep(0.001)"


def start(argv: list[str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--output", "quiet", *extra, "--", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def pgid_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies count as gone: nothing of the job runs any more
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def test_kill_9_of_stepflow_ends_the_command_after_the_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    proc = start(["bash", "-c", f"echo $$ > {pidfile}; sleep 60 & wait"], "--kill-grace", "1")
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    pgid = int(pidfile.read_text())
    assert pgid_alive(pgid)
    proc.kill()
    proc.wait()
    assert wait_for(lambda: not pgid_alive(pgid), timeout=15)


def test_normal_exit_does_not_fire_the_watchdog(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    # A daemon the job leaves behind in its own group keeps running after a normal exit.
    script = f"(sleep 3; touch {marker}) > /dev/null 2>&1 &"
    proc = start(["bash", "-c", script], "--kill-grace", "0")
    assert proc.wait(timeout=30) == 0
    assert wait_for(marker.exists, timeout=15)


@pytest.mark.parametrize("seed", range(10))
def test_kill_9_at_a_random_moment_keeps_the_store_intact(db_path: Path, seed: int) -> None:
    proc = start(py(STEADY))
    time.sleep(random.Random(seed).uniform(0.05, 1.2))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not db_path.exists():
        return  # killed before the store was even created: nothing to keep
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]
    if not query(db_path, "SELECT 1 FROM sqlite_master WHERE name = 'executions'"):
        return  # killed while the new store's tables were being created: the next open makes them
    rows = query(db_path, "SELECT id, status, line_count FROM executions")
    assert len(rows) <= 1
    if rows:
        # everything committed is consistent: logs only for that run, steps numbered from 0
        (run_id, status, _), = rows
        assert status == "running"  # nobody could mark it; `ls`/`show` report it as abandoned
        indexes = [i for (i,) in query(db_path, "SELECT step_index FROM steps ORDER BY step_index")]
        assert indexes == list(range(len(indexes)))
        lines = query(db_path, "SELECT first_line, line_count FROM logs WHERE execution_id = ? ORDER BY first_line", (run_id,))
        for (a, n), (b, _) in zip(lines, lines[1:], strict=False):
            assert a + n <= b


def test_terminal_closed_under_a_live_view(db_path: Path, tmp_path: Path) -> None:
    """The terminal goes away (ssh dropped): SIGHUP reaches the job, the run is recorded as cancelled."""
    import pty

    pidfile = tmp_path / "pid"
    pid, master = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty
        os.execv(sys.executable, [sys.executable, "-m", "stepflow", "run", "--output", "live", "--",
                                  "bash", "-c", f"echo $$ > {pidfile}; echo STEP_START:wait; sleep 60"])
    seen = b""
    deadline = time.monotonic() + 20
    while b"wait" not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(master, 4096)
        except OSError:
            break
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    os.close(master)  # hang up
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 129  # 128+SIGHUP, no crash on the dead terminal
    assert query(db_path, "SELECT status, exit_code FROM executions") == [("cancelled", 129)]
    assert wait_for(lambda: not pgid_alive(int(pidfile.read_text())), timeout=15)


def test_a_store_killed_while_it_was_being_created_opens_and_records(db_path: Path, stepflow) -> None:  # type: ignore[no-untyped-def]
    """What a kill -9 between creating the file and its tables leaves: an empty database."""
    import apsw

    db_path.parent.mkdir(parents=True)
    apsw.Connection(str(db_path)).execute("PRAGMA journal_mode=WAL").fetchall()  # a file, no tables
    assert stepflow("run", "-o", "quiet", "--", "true").returncode == 0
    assert query(db_path, "SELECT status FROM executions") == [("completed",)]

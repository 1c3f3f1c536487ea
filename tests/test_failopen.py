"""Fail-open: whatever happens to the store, the command runs to its end with its own exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StepflowRunner, py, query, tmpfs

NOISY = "import sys\nfor i in range(200000): print(f'line {i:08d} ' + 'x' * 60)\nsys.exit(7)"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real, tiny filesystem (tmpfs of 512 KiB), so the disk really fills up."""
    with tmpfs(tmp_path / "mnt", "size=512k") as mnt:
        yield mnt


def test_disk_full_keeps_the_command_and_spools_the_run_elsewhere(
        stepflow: StepflowRunner, small_fs: Path, tmp_path: Path) -> None:
    store = small_fs / "store"
    env = {"STEPFLOW_STORAGE_PATH": str(store)}
    first = stepflow("run", "--", "bash", "-c", "echo STEP_START:before; echo kept", env=env)
    assert first.returncode == 0
    result = stepflow("run", "--output", "quiet", "--", *py(NOISY), env=env)
    assert result.returncode == 7  # the command's own status, although the disk filled up
    err = result.stderr.decode()
    assert "disk is full" in err and "is kept in" in err and "not fully recorded" not in err
    # the store's disk is the full one: the run went to the fallback folder, on another disk
    assert list((tmp_path / "runtime" / "stepflow-spool").glob("*/*.spool"))
    db = store / "database" / "stepflow.db"
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert query(db, "SELECT data FROM logs WHERE execution_id = (SELECT id FROM executions ORDER BY created_ts LIMIT 1)") == [(b"kept",)]


def test_read_only_store_runs_the_command(stepflow: StepflowRunner, small_fs: Path) -> None:
    store = small_fs / "store"
    env = {"STEPFLOW_STORAGE_PATH": str(store)}
    assert stepflow("run", "--", "true", env=env).returncode == 0
    assert subprocess.run(["mount", "-o", "remount,ro", str(small_fs)]).returncode == 0
    result = stepflow("run", "--", "bash", "-c", "echo STEP_START:a; echo out; exit 4", env=env)
    assert result.returncode == 4
    assert result.stdout == b"STEP_START:a\nout\n"
    err = result.stderr.decode()
    assert "stepflow: warning:" in err and "is kept in" in err and "runtime" in err


def test_unopenable_store_runs_the_command(stepflow: StepflowRunner, db_path: Path) -> None:
    db_path.mkdir(parents=True)  # a folder where the database file should be
    result = stepflow("run", "--", "bash", "-c", "echo hello; exit 3")
    assert result.returncode == 3
    assert result.stdout == b"hello\n"
    assert "database file cannot be opened" in result.stderr.decode()


def hold_lock(db: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Another process that holds the write lock (BEGIN EXCLUSIVE) for `seconds`."""
    code = (
        "import apsw, sys, time\n"
        f"c = apsw.Connection({str(db)!r}); c.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds}); c.execute('COMMIT')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"locked\n"
    return proc


def test_store_locked_past_the_busy_timeout_loses_nothing_once_free(stepflow: StepflowRunner, db_path: Path) -> None:
    assert stepflow("run", "--", "true").returncode == 0
    holder = hold_lock(db_path, 1.5)
    code = "import time\nfor i in range(30):\n  print(f'line {i}', flush=True); time.sleep(0.1)\nraise SystemExit(5)"
    result = stepflow("run", "--", *py(code), env={"STEPFLOW_BUSY_TIMEOUT": "200"})
    holder.wait(timeout=30)
    assert result.returncode == 5
    assert "database is locked" in result.stderr.decode()
    assert "not fully recorded" not in result.stderr.decode()
    assert query(db_path, "SELECT status, exit_code, line_count FROM executions ORDER BY created_ts DESC LIMIT 1") == [("failed", 5, 30)]
    assert query(db_path, "SELECT SUM(line_count) FROM logs") == [(30,)]


def test_store_locked_for_the_whole_run_spools_it_and_the_next_command_stores_it(
        stepflow: StepflowRunner, db_path: Path, storage: Path) -> None:
    assert stepflow("run", "--", "true").returncode == 0
    holder = hold_lock(db_path, 3600)  # never let go while the run lasts
    try:
        result = stepflow("run", "--", "bash", "-c", "echo STEP_START:a; echo one; exit 6",
                          env={"STEPFLOW_BUSY_TIMEOUT": "300"})
        assert result.returncode == 6
        assert holder.poll() is None  # the lock was still held when stepflow returned
        last = result.stderr.decode().strip().splitlines()[-1]
        assert "is kept in" in last and "stepflow db replay" in last
        assert len(list((storage / "spool").glob("*.spool"))) == 1
    finally:
        holder.kill()
        holder.wait()
    listed = stepflow("ls", "--json")  # the first command that can write the store replays
    assert listed.returncode == 0, listed.stderr
    assert [r["status"] for r in json.loads(listed.stdout)] == ["failed", "completed"]
    assert not list((storage / "spool").glob("*.spool"))
    assert query(db_path, "SELECT status, exit_code, line_count FROM executions ORDER BY created_ts DESC LIMIT 1") == [("failed", 6, 1)]
    assert query(db_path, "SELECT COUNT(*) FROM steps") == [(1,)]


def test_log_level_error_hides_store_warnings_but_never_losses(stepflow: StepflowRunner, db_path: Path) -> None:
    assert stepflow("run", "--", "true").returncode == 0
    holder = hold_lock(db_path, 1.5)
    code = "import time\nfor i in range(20):\n  print(i, flush=True); time.sleep(0.1)"
    result = stepflow("run", "--", *py(code), env={"STEPFLOW_BUSY_TIMEOUT": "200", "STEPFLOW_LOG_LEVEL": "error"})
    holder.wait(timeout=30)
    assert result.returncode == 0
    assert b"warning" not in result.stderr.replace(b"stepflow: run", b"")
    assert query(db_path, "SELECT SUM(line_count) FROM logs") == [(20,)]


def test_output_dropped_while_the_store_was_locked_is_counted_on_the_run(stepflow: StepflowRunner, db_path: Path) -> None:
    assert stepflow("run", "--", "true").returncode == 0
    holder = hold_lock(db_path, 2.0)
    # 40 MB at once while the store is locked: more than stepflow keeps waiting (16 MiB)
    code = "import sys, time\nsys.stdout.write(('x' * 79 + '\\n') * 500000)\nsys.stdout.flush()\ntime.sleep(4)"
    result = stepflow("run", "--output", "quiet", "--", *py(code),
                      env={"STEPFLOW_BUSY_TIMEOUT": "200", "STEPFLOW_SPOOL_MAX": "1M"})  # a spool too small
    holder.wait(timeout=30)
    assert result.returncode == 0
    (lost, lines), = query(db_path, "SELECT lost_lines, line_count FROM executions ORDER BY created_ts DESC LIMIT 1")
    (kept,), = query(db_path, "SELECT SUM(l.line_count) FROM logs l JOIN executions e ON e.id = l.execution_id"
                              " WHERE e.created_ts = (SELECT MAX(created_ts) FROM executions)")
    assert lines == 500000 and lost > 0 and kept + lost == lines
    assert f"{lost} output lines".encode() in result.stderr


def test_log_level_info_and_debug_say_where_the_run_went(stepflow: StepflowRunner, db_path: Path) -> None:
    info = stepflow("run", "--output", "quiet", "--", "bash", "-c", "echo STEP_START:a; echo x",
                    env={"STEPFLOW_LOG_LEVEL": "info"})
    (run_id,), = query(db_path, "SELECT id FROM executions")
    assert info.stderr.decode() == f"stepflow: run {run_id} recorded in {db_path}: 1 lines, 1 steps, 0 artifacts\n"
    debug = stepflow("run", "--output", "quiet", "--", "true", env={"STEPFLOW_LOG_LEVEL": "debug"})
    assert debug.stderr.decode().splitlines()[-1].startswith("stepflow: debug: ")
    assert stepflow("run", "--output", "quiet", "--", "true").stderr == b""  # warning, the default: silent

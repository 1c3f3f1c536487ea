"""prune: old runs go with their steps, log lines and files; running ones and the user's files stay."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from stepflow.config import load_settings
from stepflow.maintenance.migrate import migrate
from stepflow.store import open_store
from tests import test_migrate
from tests.conftest import StepflowRunner, query
from tests.test_migrate import dump, one_line_error, tree

legacy_store = test_migrate.legacy_store
legacy_template = test_migrate.legacy_template
DAY = 86400.0
NOW = time.time()


def add_run(conn: Any, storage: Path, run_id: str, *, age_days: float, status: str, outside: Path) -> None:
    """A run with two steps, a log block, an artifact copied into the store and one left outside."""
    ts = NOW - age_days * DAY
    created = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ts))
    conn.execute("INSERT INTO executions (id, name, command, status, created_at, created_ts, line_count)"
                 " VALUES (?, 'job', 'true', ?, ?, ?, 3)", (run_id, status, created, ts))
    for i in range(2):
        conn.execute("INSERT INTO steps (id, execution_id, name, step_index, status, created_at) VALUES (?,?,?,?,?,?)",
                     (f"{run_id}-s{i}", run_id, f"step {i}", i, "completed", created))
    conn.execute("INSERT INTO logs (execution_id, step_index, stream, first_line, line_count, ts, data)"
                 " VALUES (?, 0, 1, 0, 3, ?, ?)", (run_id, ts, b"a\nb\nc"))
    folder = storage / "artifacts" / run_id
    folder.mkdir(parents=True)
    (folder / "report.html").write_bytes(b"x" * 1000)
    for name, path in (("report.html", folder / "report.html"), ("outside.txt", outside)):
        conn.execute("INSERT INTO artifacts (id, execution_id, name, file_path, created_at) VALUES (?,?,?,?,?)",
                     (f"{run_id}-{name}", run_id, name, str(path), created))


def make_store(storage: Path, tmp_path: Path) -> Path:
    outside = tmp_path / "user-file.txt"
    outside.write_text("the user's own file")
    store = open_store(load_settings())
    with store.conn:
        add_run(store.conn, storage, "old-done", age_days=40, status="completed", outside=outside)
        add_run(store.conn, storage, "old-failed", age_days=35, status="failed", outside=outside)
        add_run(store.conn, storage, "old-running", age_days=50, status="running", outside=outside)
        add_run(store.conn, storage, "new-done", age_days=1, status="completed", outside=outside)
    store.close()
    return outside


def test_prune_dry_run_then_prune(stepflow: StepflowRunner, storage: Path, db_path: Path, tmp_path: Path) -> None:
    outside = make_store(storage, tmp_path)
    state, files = dump(db_path), tree(storage / "artifacts")
    dry = stepflow("prune", "--older-than", "30d", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert (planned["runs"], planned["steps"], planned["log_lines"], planned["artifacts"]) == (2, 4, 6, 4)
    assert planned["file_bytes"] == 2000 and planned["kept_live"] == 1 and planned["dry_run"] is True
    assert dump(db_path) == state and tree(storage / "artifacts") == files
    result = stepflow("prune", "--older-than", "30d")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("deleted 2 runs (runs created before ") and lines[0].endswith(
        "with 4 steps, 6 log lines, 4 artifacts")
    assert lines[1].startswith("freed 2.0 KiB of files and ")
    assert lines[2] == "kept 1 old run still running or pending"
    assert query(db_path, "SELECT id FROM executions ORDER BY id") == [("new-done",), ("old-running",)]
    for table, column in (("steps", "execution_id"), ("logs", "execution_id"), ("artifacts", "execution_id")):
        assert query(db_path, f"SELECT DISTINCT {column} FROM {table} ORDER BY 1") == [("new-done",), ("old-running",)]
    assert sorted(p.name for p in (storage / "artifacts").iterdir()) == ["new-done", "old-running"]
    assert outside.read_text() == "the user's own file"  # an artifact path outside the store is never touched
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]


def test_prune_by_status(stepflow: StepflowRunner, storage: Path, db_path: Path, tmp_path: Path) -> None:
    make_store(storage, tmp_path)
    result = stepflow("prune", "--older-than", "30d", "--status", "failed", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["runs"] == 1
    assert query(db_path, "SELECT id FROM executions ORDER BY id") == [("new-done",), ("old-done",), ("old-running",)]


def test_prune_refuses_bad_options(stepflow: StepflowRunner, storage: Path, db_path: Path, tmp_path: Path) -> None:
    make_store(storage, tmp_path)
    state = dump(db_path)
    for args, message in [
        (("--older-than", "30 days"), "--older-than '30 days' is not a duration (90, 90s, 10m, 1h30m, 2d) or a date (2025-08-01)"),
        (("--older-than", "1d", "--status", "running"), "--status running: runs still running or pending are never pruned"),
        (("--older-than", "1d", "--status", "done"), "--status 'done' is not one of pending, running, completed, failed,"
                                                       " cancelled, timed_out, abandoned, skipped"),
    ]:
        result = stepflow("prune", *args)
        assert result.returncode == 2
        assert one_line_error(result) == f"stepflow: error: {message}"
    assert dump(db_path) == state


def test_prune_migrated_legacy_runs_with_their_log_folders(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                           storage: Path, db_path: Path) -> None:
    migrate(load_settings())
    total = legacy_store["executions"]
    result = stepflow("prune", "--older-than", "2025-08-02", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    left = {str(r[0]) for r in query(db_path, "SELECT id FROM executions")}
    assert report["runs"] == total - len(left) > 0 and report["file_bytes"] > 0
    assert {p.name for p in (storage / "executions").iterdir()} <= left
    assert {p.name for p in (storage / "artifacts").iterdir()} <= left
    assert query(db_path, "SELECT COUNT(*) FROM logs WHERE execution_id NOT IN (SELECT id FROM executions)") == [(0,)]


def test_prune_removes_the_folders_a_killed_prune_left(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                       storage: Path, db_path: Path) -> None:
    """A prune killed between a batch's rows and its files leaves folders without a run."""
    import os

    migrate(load_settings())
    orphan = storage / "executions" / "0bad0000-0000-4000-8000-000000000001"
    orphan.mkdir(parents=True)
    (orphan / "step_0_x.log").write_text("[2025-08-01T00:00:00] left behind\n")
    os.utime(orphan, (0, 0))
    young = storage / "artifacts" / "0bad0000-0000-4000-8000-000000000002"  # a run being recorded now
    young.mkdir(parents=True)
    assert stepflow("prune", "--older-than", "2000-01-01").returncode == 0
    assert not orphan.exists() and young.exists()

"""db stats/check/optimize and health: what a cron job or a Kubernetes probe sees."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from stepflow import procs
from stepflow.store import schema
from tests import test_migrate, test_upkeep
from tests.conftest import StepflowRunner, query
from tests.test_migrate import one_line_error

current_store = test_upkeep.current_store
legacy_store = test_migrate.legacy_store
legacy_template = test_migrate.legacy_template
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")


def damage(db: Path) -> None:
    """An index that disagrees with its table: integrity_check and quick_check both notice."""
    c = sqlite3.connect(db)
    c.execute("PRAGMA writable_schema=ON")
    c.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX idx_executions_status ON executions (name)'"
              " WHERE name = 'idx_executions_status'")
    c.commit()
    c.close()


def test_db_stats(stepflow: StepflowRunner, current_store: Path, storage: Path) -> None:
    result = stepflow("db", "stats", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["database"] == str(current_store) and data["kind"] == "current"
    assert data["schema_version"] == data["schema_version_current"] == schema.CURRENT_VERSION
    assert data["journal_mode"] == "wal" and data["files"]["database"] == current_store.stat().st_size
    assert data["tables"] == {"executions": 5, "steps": 0, "artifacts": 0, "logs": 0, "log_lines": 0}
    assert data["page_count"] * data["page_size"] == current_store.stat().st_size
    assert {"busy_timeout_ms", "cache_size", "wal_autocheckpoint", "mmap_size", "synchronous"} <= set(data["settings"])
    assert data["sqlite_version"] and data["backups"] == {"folder": str(storage / "backups"), "count": 0, "latest": None}
    text = stepflow("db", "stats").stdout.decode()
    assert text.startswith(f"database      {current_store}\n") and "tables        executions 5," in text


def test_db_stats_on_a_legacy_store_changes_nothing(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                   db_path: Path) -> None:
    before = test_migrate.sha256(db_path)
    data = json.loads(stepflow("db", "stats", "--json").stdout)
    assert data["kind"] == "legacy" and data["journal_mode"] == "delete" and data["schema_version"] == 0
    assert data["tables"]["executions"] == legacy_store["executions"] and "logs" not in data["tables"]
    assert test_migrate.sha256(db_path) == before


def test_db_check_and_optimize(stepflow: StepflowRunner, current_store: Path) -> None:
    ok = stepflow("db", "check")
    assert ok.returncode == 0 and ok.stdout.decode().startswith(f"{current_store}: integrity_check ok (")
    optimized = stepflow("db", "optimize")
    assert optimized.returncode == 0, optimized.stderr
    assert query(current_store, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'") == [(1,)]
    damage(current_store)
    bad = stepflow("db", "check", "--json")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["ok"] is False and report["problems"][0].startswith("row 1 missing from index")


def test_healthy_store(stepflow: StepflowRunner, current_store: Path) -> None:
    result = stepflow("health", "--json")
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["healthy"] is True and report["reasons"] == []
    assert ISO_WITH_OFFSET.match(report["checked_at"])
    assert report["checks"]["journal_mode"] == "wal" and report["checks"]["integrity"] == "ok"
    text = stepflow("health")
    assert text.returncode == 0 and text.stdout.decode().startswith(f"healthy: {current_store} (journal mode wal")


def test_unhealthy_legacy_store(stepflow: StepflowRunner, legacy_store: dict[str, Any], db_path: Path) -> None:
    result = stepflow("health")
    assert result.returncode == 1
    assert result.stdout.decode().splitlines() == [
        f"unhealthy: {db_path}",
        '  - a StepFlow Monitor store: run "stepflow migrate --to-wal"',
        '  - journal mode is delete, not WAL: run "stepflow migrate --to-wal"',
    ]


def test_unhealthy_reasons(stepflow: StepflowRunner, current_store: Path) -> None:
    # A run whose stepflow process is gone, as recorded by a real process that has exited.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    started = procs.start_time(child.pid)
    child.wait()
    conn = sqlite3.connect(current_store)
    conn.execute("INSERT INTO executions (id, name, command, status, created_at, created_ts, pid, pid_started, host)"
                 " VALUES ('dead0000-run', 'job', 'true', 'running', '2026-01-01T00:00:00+00:00', 1, ?, ?, ?)",
                 (child.pid, started, os.uname().nodename))
    conn.execute("INSERT INTO executions (id, name, command, status, created_at, created_ts, pid, pid_started, host)"
                 " VALUES ('alive000-run', 'job', 'true', 'running', '2026-01-01T00:00:00+00:00', 1, ?, ?, ?)",
                 (os.getpid(), procs.start_time(os.getpid()), os.uname().nodename))
    conn.commit()
    result = stepflow("health", "--json", "--max-wal", "0", "--min-free", "1000000G")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["healthy"] is False
    assert report["checks"]["abandoned_runs"] == ["dead0000-run"]
    reasons = report["reasons"]
    assert reasons[0].startswith("low disk: ") and reasons[0].endswith("under 976.6 TiB")
    assert any(r.startswith("WAL is ") and "over 0 B" in r for r in reasons)
    assert "1 run left running by a process that is gone: dead0000" in reasons
    conn.close()


def damage_page(db: Path) -> None:
    """A b-tree page that is not one: quick_check (what health runs) notices."""
    c = sqlite3.connect(db)
    root, size = c.execute("SELECT rootpage, (SELECT page_size FROM pragma_page_size) FROM sqlite_master"
                           " WHERE name = 'idx_logs_execution'").fetchone()
    c.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * size)
        f.write(b"\xff")


def test_unhealthy_when_damaged_or_missing(stepflow: StepflowRunner, current_store: Path) -> None:
    damage_page(current_store)
    result = stepflow("health")
    assert result.returncode == 1
    lines = result.stdout.decode().splitlines()
    assert lines[0] == f"unhealthy: {current_store}"
    assert lines[1].startswith("  - integrity: *** in database main *** ") and lines[1].endswith(
        'btreeInitPage() returns error code 11; see "stepflow db check"')
    current_store.unlink()
    gone = stepflow("health", "--json")
    assert gone.returncode == 1
    assert json.loads(gone.stdout)["reasons"] == [f"store unreadable: no database at {current_store}"]
    bad = stepflow("health", "--max-wal", "lots")
    assert bad.returncode == 2
    assert one_line_error(bad) == ("stepflow: error: --max-wal='lots' is not a size of at least 0 bytes"
                                   " (e.g. 65536, 64K, 1M)")


def test_store_that_is_not_a_database(stepflow: StepflowRunner, db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"garbage" * 1000)
    result = stepflow("health")
    assert result.returncode == 1
    assert "  - store unreadable: " in result.stdout.decode()
    stats = stepflow("db", "stats")
    assert stats.returncode == 1
    assert one_line_error(stats) == f"stepflow: error: store {db_path}: database file is damaged or is not a database"

"""migrate --to-wal: StepFlow Monitor stores (generated and hand-made) come across whole, with
readers and writers running, and every failure leaves the store as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import apsw
import pytest

from stepflow.config import load_settings
from stepflow.maintenance import fs, legacy, legacy_status
from stepflow.maintenance.lock import maintenance_lock
from stepflow.maintenance.migrate import migrate
from stepflow.store import schema, zone
from tests import legacy_store as builder
from tests.conftest import StepflowRunner, py, query, tmpfs

LEGACY_TABLES = ("executions", "steps", "artifacts")
FAST = {"STEPFLOW_BUSY_TIMEOUT": "300"}  # lock waits in failure tests end quickly


# -- helpers shared with test_upkeep*.py -------------------------------------------------------


def generate(folder: Path, *, executions: int = 60, schema: str = builder.PREWAL,
             files: bool = True) -> dict[str, Any]:
    """A legacy storage folder in the real format of a release (tests/legacy_store.py); its counts."""
    return builder.build(folder, executions=executions, schema=schema, files=files)


@pytest.fixture(scope="session")
def legacy_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("legacy") / "store"
    return folder, generate(folder)


@pytest.fixture(scope="session")
def head_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("legacy-head") / "store"
    return folder, generate(folder, schema=builder.HEAD)


@pytest.fixture(scope="session")
def big_legacy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("legacy3k") / "store"
    generate(folder, executions=3000)
    return folder


@pytest.fixture
def legacy_store(legacy_template: tuple[Path, dict[str, Any]], storage: Path) -> dict[str, Any]:
    """A fresh copy of the 60-run legacy store in this test's storage folder; its counts."""
    shutil.copytree(legacy_template[0], storage)
    return legacy_template[1]


def assert_legacy_fields_kept(backup: Path, db: Path, counts: dict[str, Any] | None = None) -> None:
    """Every row of `backup` is in `db` with every legacy field as it was; a status stepflow
    shows otherwise is kept in legacy_status."""
    for table in LEGACY_TABLES:
        columns = legacy_columns(backup, table)
        before = rows(backup, table, columns)
        ids = {b[0] for b in before}
        shown = ["COALESCE(legacy_status, status)" if c == "status" and table != "artifacts" else c for c in columns]
        after = [r for r in query(db, f"SELECT {', '.join(shown)} FROM {table} ORDER BY id") if r[0] in ids]
        assert len(after) == len(before) == (counts[table] if counts else len(before))
        changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
        assert changed == [], (table, changed[:3])


def legacy_columns(db: Path, table: str) -> list[str]:
    return [str(r[1]) for r in query(db, f"PRAGMA table_info({table})")]


def rows(db: Path, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    return query(db, f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")


def dump(db: Path) -> dict[str, Any]:
    """Everything a database holds, for "nothing changed": schema, rows, version, journal mode."""
    out: dict[str, Any] = {
        "schema": query(db, "SELECT type, name, sql FROM sqlite_master ORDER BY name"),
        "user_version": query(db, "PRAGMA user_version"),
        "journal_mode": fs_journal_mode(db),
    }
    for (name,) in query(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        out[str(name)] = query(db, f"SELECT * FROM \"{name}\" ORDER BY rowid")
    return out


def fs_journal_mode(db: Path) -> str:
    with open(db, "rb") as f:
        return "wal" if f.read(20)[18] == 2 else "delete"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder`."""
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("stepflow: error: ")
    return lines[0]


@pytest.fixture
def holder(db_path: Path) -> Iterator[Any]:
    """Start a process that opens the database (optionally holding a lock); stopped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*statements: str) -> subprocess.Popen[bytes]:
        code = (
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(db_path)!r}, isolation_level=None)\n"
            + "".join(f"c.execute({s!r}).fetchall()\n" for s in statements or ("SELECT 1",))
            + "print('ready', flush=True)\n"
            "time.sleep(60)\n"
        )
        proc = subprocess.Popen(py(code), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


# -- a generated legacy store comes across whole ------------------------------------------------


def test_generated_store_keeps_every_row_and_field(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                   storage: Path, db_path: Path) -> None:
    files_before = tree(storage / "executions")
    result = stepflow("migrate", "--to-wal")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "journal mode  delete -> wal" in out and f"schema        0 -> {schema.CURRENT_VERSION}" in out
    (backup,) = (storage / "backups").iterdir()
    assert f"backup        {backup} (integrity ok)" in out
    assert query(backup, "PRAGMA integrity_check") == [("ok",)]
    # Every legacy field of every row, compared with the verified backup.
    assert_legacy_fields_kept(backup, db_path, legacy_store)
    # The killed run is abandoned, the steps left running in finished runs settled.
    assert query(db_path, "SELECT legacy_status, status FROM executions WHERE legacy_status IS NOT NULL") == [
        ("pending", "abandoned")] * legacy_store["pending"]
    settled = query(db_path, "SELECT legacy_status, status, COUNT(*) FROM steps WHERE legacy_status IS NOT NULL"
                             " GROUP BY 1, 2")
    assert sum(int(str(n)) for _, _, n in settled) == legacy_store["running_steps"]
    assert {(str(a), str(b)) for a, b, _ in settled} <= {("running", "completed"), ("running", "failed")}
    assert query(db_path, "SELECT COUNT(*) FROM steps s JOIN executions e ON e.id = s.execution_id"
                          " WHERE s.status = 'running' AND e.status NOT IN ('running', 'pending')") == [(0,)]
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]
    assert query(db_path, "PRAGMA user_version") == [(schema.CURRENT_VERSION,)]
    assert query(db_path, "SELECT COUNT(*) FROM executions WHERE created_ts IS NULL") == [(0,)]
    assert query(db_path, "SELECT SUM(line_count) FROM logs") == [(legacy_store["log_lines"],)]
    assert query(db_path, "SELECT SUM(line_count) FROM executions") == [(legacy_store["log_lines"],)]
    (warnings,) = query(db_path, "SELECT warnings FROM executions WHERE status = 'abandoned'")
    assert json.loads(str(warnings[0])) == [legacy_status.ABANDONED_NOTE]
    assert tree(storage / "executions") == files_before  # the log files are left as they were


def test_history_commands_show_legacy_runs_and_log_lines(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                         storage: Path, db_path: Path) -> None:
    migrate(load_settings())
    listed = json.loads(stepflow("ls", "--limit", "100", "--json").stdout)
    legacy_ids = {str(r[0]) for r in query(db_path, "SELECT id FROM executions")}
    assert {r["id"] for r in listed} == legacy_ids
    assert all(r["created_at"][-6] in "+-" for r in listed)  # ISO with an offset
    # A run with log files: the old uuid (or a prefix) works in show and logs.
    log_file = sorted((storage / "executions").rglob("step_*.log"))[0]
    run_id = log_file.parent.name
    shown = json.loads(stepflow("show", run_id[:8], "--json").stdout)
    assert shown["id"] == run_id and len(shown["steps"]) == query(
        db_path, "SELECT COUNT(*) FROM steps WHERE execution_id = ?", (run_id,))[0][0]
    expected = []
    for path in sorted(log_file.parent.glob("step_*.log"), key=lambda p: int(p.name.split("_")[1])):
        expected += [line.split("] ", 1)[1] for line in path.read_text(encoding="utf-8").splitlines()]
    logs = stepflow("logs", run_id)
    assert logs.returncode == 0 and logs.stdout.decode().splitlines() == expected
    first_step = int(log_file.name.split("_")[1])
    only = stepflow("logs", run_id, "--step", shown["steps"][first_step]["name"]).stdout.decode().splitlines()
    assert only == [line.split("] ", 1)[1] for line in log_file.read_text(encoding="utf-8").splitlines()]


# -- hand-made legacy rows: everything the legacy tool could have left behind --------------------

ODD = "0dd00000-0000-4000-8000-000000000001"
BARE = "0dd00000-0000-4000-8000-000000000002"
OFFSET = "0dd00000-0000-4000-8000-000000000003"
ODD_STEP = "57e90000-0000-4000-8000-000000000001"


def add_variants(storage: Path) -> None:
    """Rows the generator does not write, as the legacy tool (Python's sqlite3) would."""
    db = storage / "database" / "stepflow.db"
    c = sqlite3.connect(db)
    c.execute("INSERT INTO executions (id, name, command, working_directory, status, created_at, started_at,"
              " environment, tags, metadata, user_name) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
              (ODD, "odd json", "sh odd.sh", "/w", "completed", "2025-08-03T10:00:00", "2025-08-03T10:00:01",
               "{not json", "[unclosed", "null-ish {", "ops"))
    c.execute("INSERT INTO executions (id, name, command, status, created_at) VALUES (?,?,?,?,?)",
              (BARE, "nulls everywhere", "true", "running", "2025-08-03T11:00:00.5"))
    c.execute("INSERT INTO executions (id, name, command, status, created_at, completed_at, tags) VALUES (?,?,?,?,?,?,?)",
              (OFFSET, "with offset", "true", "completed", "2025-08-03T12:00:00+02:00", "2025-08-03T12:00:05+02:00",
               '["démo"]'))
    c.execute("INSERT INTO steps (id, execution_id, name, step_index, status, created_at, metadata)"
              " VALUES (?,?,?,?,?,?,?)", (ODD_STEP, ODD, "build", 0, "completed", "2025-08-03T10:00:01", "{bad"))
    c.execute("INSERT INTO artifacts (id, execution_id, step_id, name, file_path, created_at, tags, metadata)"
              " VALUES (?,?,?,?,?,?,?,?)", ("a0000000-0000-4000-8000-000000000001", ODD, ODD_STEP, "gone.bin",
                                            "/nonexistent/gone.bin", "2025-08-03T10:00:02", None, "not json"))
    c.commit()
    c.close()
    folder = storage / "executions" / ODD
    folder.mkdir(parents=True)
    (folder / f"step_0_{ODD_STEP}.log").write_bytes(
        b"[2025-08-03T10:00:01.250000] first line\n"
        b"[2025-08-03T10:00:01.500000] bad bytes \xff\xfe kept\n"
        b"a continuation without a time stamp\n"
        b"[2025-08-03T10:00:02+02:00] an offset time\n"
        b"[not a time] kept whole\n"
        b"[2025-08-03T10:00:03] no newline at the end"
    )
    (folder / "step_7_ffffffff-0000-4000-8000-000000000009.log").write_bytes(b"[2025-08-03T10:00:09] orphan step\n")
    (folder / "step_1_eeeeeeee-0000-4000-8000-000000000001.log").write_bytes(b"")


def local(text: str) -> float:
    return datetime.fromisoformat(text).astimezone().timestamp()


def test_hand_made_rows_keep_bad_json_nulls_times_and_odd_logs(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                               storage: Path, db_path: Path) -> None:
    add_variants(storage)
    report = migrate(load_settings())
    assert report.abandoned == 2 and report.missing_artifacts >= 1
    (backup,) = (storage / "backups").iterdir()
    assert_legacy_fields_kept(backup, db_path)
    assert query(db_path, "SELECT environment, tags, metadata FROM executions WHERE id = ?", (ODD,)) == [
        ("{not json", "[unclosed", "null-ish {")]
    # Naive times are local time; an offset is honoured.
    created = dict(query(db_path, "SELECT id, created_ts FROM executions WHERE id IN (?, ?, ?)", (ODD, BARE, OFFSET)))
    assert created == pytest.approx({ODD: local("2025-08-03T10:00:00"), BARE: local("2025-08-03T11:00:00.5"),
                                     OFFSET: local("2025-08-03T12:00:00+02:00")})
    lines = [(int(s), bytes(d)) for s, d in query(
        db_path, "SELECT step_index, data FROM logs WHERE execution_id = ? ORDER BY first_line", (ODD,))]
    text = b"\n".join(d for _, d in lines).split(b"\n")
    assert text == [b"first line", b"bad bytes \xff\xfe kept", b"a continuation without a time stamp",
                    b"an offset time", b"[not a time] kept whole", b"no newline at the end", b"orphan step"]
    assert [s for s, _ in lines][-1] == 7  # a file whose step row is missing keeps its file's index
    stamps = query(db_path, "SELECT ts FROM logs WHERE execution_id = ? ORDER BY first_line", (ODD,))
    assert stamps[0][0] == pytest.approx(local("2025-08-03T10:00:01.25"))
    # show and logs cope with all of it.
    shown = stepflow("show", ODD, "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    # The promised types, with the legacy text kept beside them as it was.
    assert (detail["tags"], detail["tags_raw"]) == ([], "[unclosed")
    assert (detail["steps"][0]["metadata"], detail["steps"][0]["metadata_raw"]) == ({}, "{bad")
    assert detail["artifacts"][0]["path"] == "/nonexistent/gone.bin"
    bare = json.loads(stepflow("show", BARE, "--json").stdout)
    assert bare["status"] == "abandoned" and bare["tags"] == [] and bare["steps"] == []
    logs = stepflow("logs", ODD)
    assert logs.returncode == 0 and b"first line\nbad bytes" in logs.stdout


def test_naive_times_are_read_as_local_time(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                            storage: Path, db_path: Path) -> None:
    add_variants(storage)
    india = {"TZ": "Asia/Kolkata"}  # +05:30 all year
    assert stepflow("migrate", "--to-wal", env=india).returncode == 0
    offset = 5.5 * 3600
    utc = datetime.fromisoformat("2025-08-03T10:00:00+00:00").timestamp()
    assert query(db_path, "SELECT created_ts FROM executions WHERE id = ?", (ODD,)) == [(utc - offset,)]
    assert query(db_path, "SELECT created_ts FROM executions WHERE id = ?", (OFFSET,)) == [(utc,)]
    first_log = query(db_path, "SELECT ts FROM logs WHERE execution_id = ? ORDER BY first_line LIMIT 1", (ODD,))
    assert first_log[0][0] == pytest.approx(utc + 1.25 - offset)
    shown = json.loads(stepflow("show", ODD, "--json", env=india).stdout)
    assert shown["created_at"] == "2025-08-03T10:00:00+05:30"


# -- idempotent, dry run, other kinds of store --------------------------------------------------


def test_second_migrate_and_dry_run_change_nothing(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                   storage: Path, db_path: Path) -> None:
    before = tree(storage)
    dry = stepflow("migrate", "--to-wal", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert tree(storage) == before  # no backup folder, no lock file, not a byte changed
    out = dry.stdout.decode()
    assert out.startswith("dry run: nothing changed.") and "would switch journal_mode DELETE -> WAL" in out
    assert f"would import {legacy_store['log_lines']} log lines" in out and "would mark up to 1 run left pending" in out
    assert stepflow("migrate", "--to-wal").returncode == 0
    state, backups = dump(db_path), sorted((storage / "backups").iterdir())
    again = stepflow("migrate", "--to-wal")
    assert again.returncode == 0
    assert again.stdout.decode() == (f"{db_path} is already a current stepflow store in WAL mode"
                                     f" (schema {schema.CURRENT_VERSION}): nothing to do\n")
    assert dump(db_path) == state and sorted((storage / "backups").iterdir()) == backups
    dry_again = stepflow("migrate", "--to-wal", "--dry-run")
    assert dry_again.returncode == 0 and "nothing to do" in dry_again.stdout.decode()


def test_older_stepflow_store_is_brought_up_to_date(db_path: Path) -> None:
    settings = load_settings()
    db_path.parent.mkdir(parents=True)
    conn = apsw.Connection(str(db_path))
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    schema.apply_migrations(conn, upto=2)
    conn.execute("INSERT INTO executions (id, name, command, status, created_at, created_ts, pid) VALUES"
                 " ('r1', 'old', 'true', 'completed', '2026-01-01T00:00:00+00:00', 1767225600, 42)")
    conn.close()
    report = migrate(settings)
    assert (report.kind, report.version_before, report.journal_before) == ("older", 2, "wal")
    assert report.migrations == [m.__name__ for m in schema.MIGRATIONS[2:]]
    assert query(db_path, "SELECT id, status, pid FROM executions") == [("r1", "completed", 42)]
    assert query(db_path, "SELECT COUNT(*) FROM logs") == [(0,)]
    assert report.backup is not None and query(report.backup, "PRAGMA user_version") == [(2,)]


def test_current_store_in_delete_mode_goes_back_to_wal(stepflow: StepflowRunner, db_path: Path) -> None:
    assert stepflow("run", "--", "true").returncode == 0
    assert stepflow("rollback", "--journal").returncode == 0
    assert fs_journal_mode(db_path) == "delete"
    report = migrate(load_settings())
    assert report.migrations == [] and (report.journal_before, report.journal_after) == ("delete", "wal")
    assert query(db_path, "SELECT COUNT(*) FROM executions") == [(1,)]


# -- zero downtime: readers, writers and stepflow runs during the migration ---------------------

READER = r"""
import apsw, json, os, sys, time
c = apsw.Connection(sys.argv[1]); c.setbusytimeout(30000)
n, worst, errors = 0, 0.0, []
open(sys.argv[3], "w").close()
while not os.path.exists(sys.argv[2]):
    t = time.monotonic()
    try:
        c.execute("SELECT COUNT(*) FROM executions").fetchall()
        c.execute("SELECT id, name, status FROM executions ORDER BY rowid DESC LIMIT 5").fetchall()
        n += 1
    except Exception as e:
        errors.append(repr(e))
    worst = max(worst, time.monotonic() - t)
    time.sleep(0.003)
print(json.dumps({"n": n, "worst": worst, "errors": errors}))
"""

WRITER = r"""
import apsw, datetime, json, os, sys, time, uuid
c = apsw.Connection(sys.argv[1]); c.setbusytimeout(30000)
ids, worst, errors = [], 0.0, []
open(sys.argv[3], "w").close()
while not os.path.exists(sys.argv[2]):
    i = str(uuid.uuid4()); t = time.monotonic()
    try:  # as the legacy server writes: its own columns only, naive local time
        c.execute("INSERT INTO executions (id, name, command, status, created_at) VALUES (?, ?, ?, ?, ?)",
                  (i, "legacy writer", "true", "completed", datetime.datetime.now().isoformat()))
        ids.append(i)
    except Exception as e:
        errors.append(repr(e))
    worst = max(worst, time.monotonic() - t)
    time.sleep(0.005)
print(json.dumps({"ids": ids, "worst": worst, "errors": errors}))
"""


def test_readers_writers_and_runs_go_on_during_migration(stepflow: StepflowRunner, big_legacy_template: Path,
                                                         storage: Path, db_path: Path, tmp_path: Path) -> None:
    shutil.copytree(big_legacy_template, storage)
    stop = tmp_path / "stop"
    started = [tmp_path / "reader.up", tmp_path / "writer.up"]
    reader = subprocess.Popen(py(READER) + [str(db_path), str(stop), str(started[0])], stdout=subprocess.PIPE)
    writer = subprocess.Popen(py(WRITER) + [str(db_path), str(stop), str(started[1])], stdout=subprocess.PIPE)
    lock = db_path.with_name("stepflow.db.maint")
    try:
        while not all(p.exists() for p in started):
            time.sleep(0.01)
        # A run already going when the migration starts: it cannot write a legacy store, keeps
        # its output in memory, and records it once the store has come across.
        before = subprocess.Popen([sys.executable, "-m", "stepflow", "run", "-n", "before-migrate", "--", *py(
            "import time; print('STEP_START:one', flush=True); time.sleep(1.2); print('recorded')")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        migrating = subprocess.Popen([sys.executable, "-m", "stepflow", "migrate", "--to-wal"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while migrating.poll() is None and not (lock.exists() and lock.stat().st_size):
            time.sleep(0.002)
        # A run started while the migration holds its lock: it waits, then is recorded.
        during = stepflow("run", "-n", "during-migrate", "--", *py("print('recorded')"))
        out, err = migrating.communicate(timeout=60)
        assert migrating.returncode == 0, err
        before_out, before_err = before.communicate(timeout=60)
        time.sleep(0.2)
    finally:
        stop.touch()
        reader_out, _ = reader.communicate(timeout=30)
        writer_out, _ = writer.communicate(timeout=30)
    read, wrote = json.loads(reader_out), json.loads(writer_out)
    assert read["errors"] == [] and read["n"] > 0
    assert wrote["errors"] == [] and wrote["ids"]
    kept = {str(r[0]) for r in query(db_path, "SELECT id FROM executions WHERE name = 'legacy writer'")}
    assert kept == set(wrote["ids"])  # every row written before, during and after the migration
    assert query(db_path, "SELECT COUNT(*) FROM executions WHERE created_ts IS NULL") == [(0,)]
    assert during.returncode == 0 and before.returncode == 0, (during.stderr, before_err)
    # On a loaded machine a run may outwait its writer's limit and spool (it says so): the next
    # stepflow command stores it, exactly once. Either way nothing is lost.
    assert stepflow("ls").returncode == 0
    for name in ("before-migrate", "during-migrate"):
        recorded = query(db_path, "SELECT e.status, l.data FROM executions e JOIN logs l ON l.execution_id = e.id"
                                  " WHERE e.name = ?", (name,))
        assert recorded == [("completed", b"recorded")], (name, during.stderr, before_err)
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]


def test_runs_wait_for_the_maintenance_lock_then_go_on(stepflow: StepflowRunner, db_path: Path) -> None:
    assert stepflow("run", "--", "true").returncode == 0
    with maintenance_lock(db_path, what="migrate", wait=1):
        proc = subprocess.Popen([sys.executable, "-m", "stepflow", "run", "-n", "waiting", "--", "echo", "hi"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        assert proc.poll() is None  # the command has run; the record waits for the lock
        assert query(db_path, "SELECT COUNT(*) FROM executions WHERE name = 'waiting'") == [(0,)]
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out == b"hi\n", err
    assert query(db_path, "SELECT status FROM executions WHERE name = 'waiting'") == [("completed",)]


# -- every failure leaves the store as it was ----------------------------------------------------


def test_unwritable_backup_folder(stepflow: StepflowRunner, legacy_store: dict[str, Any], storage: Path,
                                  db_path: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    before, state = sha256(db_path), dump(db_path)
    result = stepflow("migrate", "--to-wal", "--backup-dir", str(blocker / "backups"))
    assert result.returncode == 1
    assert one_line_error(result) == (f"stepflow: error: cannot write backups to {blocker / 'backups'}: Not a"
                                      " directory; choose another folder with --backup-dir; nothing changed")
    assert sha256(db_path) == before and dump(db_path) == state
    assert not db_path.with_name("stepflow.db-wal").exists()


def test_read_only_backup_folder(stepflow: StepflowRunner, legacy_store: dict[str, Any], db_path: Path,
                                 tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=64k") as mnt:
        before = sha256(db_path)
        result = stepflow("migrate", "--to-wal", "--backup-dir", str(mnt))
        assert result.returncode == 1
        assert "Read-only file system" in one_line_error(result)
        assert sha256(db_path) == before


def test_damaged_store_fails_the_backup_check(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                              storage: Path, db_path: Path) -> None:
    c = sqlite3.connect(db_path)
    c.execute("PRAGMA writable_schema=ON")  # the index now disagrees with its table
    c.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX idx_executions_status ON executions (name)'"
              " WHERE name = 'idx_executions_status'")
    c.commit()
    c.close()
    before = sha256(db_path)
    result = stepflow("migrate", "--to-wal")
    assert result.returncode == 1
    line = one_line_error(result)
    assert line.startswith(f"stepflow: error: the backup copy of {db_path} failed its integrity check: row 1"
                           " missing from index idx_executions_status")
    assert line.endswith('the store itself may be damaged: see "stepflow db check"; nothing changed')
    assert sha256(db_path) == before and list((storage / "backups").iterdir()) == []


def test_locked_store(stepflow: StepflowRunner, legacy_store: dict[str, Any], db_path: Path, holder: Any) -> None:
    before = sha256(db_path)
    holder("BEGIN EXCLUSIVE")
    result = stepflow("migrate", "--to-wal", env=FAST)
    assert result.returncode == 1
    line = one_line_error(result)  # the holder is named (issue 12), so the line ends in its pid and command
    assert line.startswith(f"stepflow: error: store {db_path}: database is locked by pid ")
    assert line.endswith("; nothing changed")
    assert sha256(db_path) == before


def test_reader_blocking_the_switch_to_wal_is_named(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                    db_path: Path, holder: Any) -> None:
    state = dump(db_path)
    blocking = holder("BEGIN", "SELECT COUNT(*) FROM executions")  # a read transaction left open
    result = stepflow("migrate", "--to-wal", "--wait", "1", env=FAST)
    assert result.returncode == 1
    line = one_line_error(result)
    assert f"could not switch {db_path} to journal_mode=WAL within 1 s" in line
    assert f"it is open in pid {blocking.pid} (" in line and "nothing changed (backup kept at " in line
    assert dump(db_path) == state


def test_failure_inside_the_transaction_rolls_everything_back(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                              db_path: Path) -> None:
    c = sqlite3.connect(db_path)
    c.execute("CREATE TABLE logs (x)")  # m003 cannot create its table: the transaction fails half-way
    c.commit()
    c.close()
    state = dump(db_path)
    result = stepflow("migrate", "--to-wal")
    assert result.returncode == 1
    line = one_line_error(result)
    assert "table logs already exists; nothing changed (backup kept at " in line
    assert dump(db_path) == state  # rows, schema, user_version 0 and journal mode DELETE again


def test_maintenance_lock_held_by_another_migrate(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                  db_path: Path) -> None:
    state = dump(db_path)
    with maintenance_lock(db_path, what="migrate", wait=1):
        result = stepflow("migrate", "--to-wal", "--wait", "0.2")
    assert result.returncode == 1
    assert one_line_error(result) == (f"stepflow: error: store {db_path}: stepflow migrate (pid {os.getpid()}) holds"
                                      " the maintenance lock; try again when it ends; nothing changed")
    assert dump(db_path) == state


def test_usage_and_missing_store(stepflow: StepflowRunner, db_path: Path) -> None:
    result = stepflow("migrate")
    assert result.returncode == 2
    assert one_line_error(result) == 'stepflow: error: say what to migrate to: "stepflow migrate --to-wal"'
    result = stepflow("migrate", "--to-wal")
    assert result.returncode == 1
    assert one_line_error(result) == (f"stepflow: error: no store at {db_path}; record a run with"
                                      " \"stepflow run -- CMD\" or pass --storage; nothing changed")


def test_open_store_refuses_a_legacy_store(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                           db_path: Path) -> None:
    result = stepflow("ls")
    assert result.returncode == 1
    assert one_line_error(result) == (f"stepflow: error: {db_path} is a StepFlow Monitor store; run"
                                      " \"stepflow migrate --to-wal\" to bring it across")


MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 22 0:35 / /mnt/shared\\040drive rw,relatime - nfs4 server:/export rw,vers=4.2
41 22 0:36 / /mnt/smb rw - cifs //nas/share rw
42 22 0:37 / /home/u/sshfs rw - fuse.sshfs u@h:/ rw
43 22 0:38 / /mnt/shared\\040drive/local rw - ext4 /dev/sdb1 rw
"""


@pytest.mark.parametrize("path, expected", [
    ("/mnt/shared drive/store/database/stepflow.db", "nfs4"),
    ("/mnt/shared drive/local/store/stepflow.db", None),  # a local disk mounted inside the share
    ("/mnt/smb/x.db", "cifs"),
    ("/home/u/sshfs/store/x.db", "fuse.sshfs"),
    ("/home/u/store/x.db", None),
    ("/mnt/smbother/x.db", None),
])
def test_network_filesystems_are_recognised(path: str, expected: str | None) -> None:
    assert fs.network_filesystem(Path(path), mountinfo=MOUNTINFO) == expected


@pytest.mark.parametrize("line, expected", [
    (b"[2025-08-02T13:40:07.123456] text", (local("2025-08-02T13:40:07.123456"), b"text")),
    (b"[2025-08-02T13:40:07] ", (local("2025-08-02T13:40:07"), b"")),
    (b"[2025-08-02T13:40:07+02:00] x", (local("2025-08-02T13:40:07+02:00"), b"x")),
    (b"[soon] text", (None, b"[soon] text")),
    (b"no stamp", (None, b"no stamp")),
])
def test_legacy_log_line_time_stamps(line: bytes, expected: tuple[float | None, bytes]) -> None:
    assert legacy.line_time(line) == expected


def test_legacy_log_lines_keep_their_own_times() -> None:
    data = b"".join(b"[2025-08-02T13:40:07.%06d] line %d\n" % (k * 100000, k) for k in range(10))
    data += b"a continuation\n[2025-08-02T13:40:08] next second\n" + b"[2025-08-02T13:40:08.5] " + b"x" * 300 + b"\n"
    shanghai = zone.parse_zone("Asia/Shanghai")
    blocks = legacy.parse_log(data, fallback_ts=0.0, max_line=256, zone=shanghai)
    # One block per time stamp: each line's own time; the continuation shares its line's.
    assert [(b.line_count, b.cut) for b in blocks] == [(1, 0)] * 9 + [(2, 0), (1, 0), (1, 44)]
    assert [b.ts for b in blocks[:10]] == [
        datetime.fromisoformat(f"2025-08-02T13:40:07.{k * 100000:06d}+08:00").timestamp() for k in range(10)]
    assert blocks[9].data == b"line 9\na continuation"
    assert blocks[11].data == b"x" * 256


def test_an_old_server_writing_after_the_migration_is_ordered_and_left_alone(stepflow: StepflowRunner, db_path: Path) -> None:
    """The old server's SQLite (Python's own here) runs the created_ts trigger; its live runs stay running."""
    import sqlite3

    assert stepflow("run", "--", "true").returncode == 0
    old = sqlite3.connect(db_path)
    old.execute("INSERT INTO executions (id, name, command, status, created_at) VALUES (?, ?, ?, ?, ?)",
                ("from-old-server", "nightly", "bash job.sh", "running", "2099-01-01T00:00:00.5"))
    old.commit()
    old.close()
    (ts,), = query(db_path, "SELECT created_ts FROM executions WHERE id = 'from-old-server'")
    assert ts is not None and abs(float(ts) - datetime(2099, 1, 1, 0, 0, 0, 500000).astimezone().timestamp()) < 0.01  # type: ignore[arg-type]
    listed = json.loads(stepflow("ls", "--json", "--limit", "1").stdout)
    assert [(r["id"], r["status"]) for r in listed] == [("from-old-server", "running")]  # newest, not abandoned
    assert query(db_path, "SELECT status FROM executions WHERE id = 'from-old-server'") == [("running",)]


def test_rows_and_log_files_an_old_server_writes_afterwards_are_complete(stepflow: StepflowRunner,
                                                                         legacy_store: dict[str, Any],
                                                                         storage: Path, db_path: Path) -> None:
    """After the migration the old server goes on (its own sqlite3): its new run, steps and log
    files show up whole, the files it rewrites are read again, its finished run shows no step running."""
    assert stepflow("migrate", "--to-wal").returncode == 0
    run_id, step_id = "5e7e0000-0000-4000-8000-000000000001", "5e7e0000-0000-4000-8000-00000000000a"
    now = datetime.now().replace(microsecond=0)
    c = sqlite3.connect(db_path)
    c.execute("INSERT INTO executions (id, name, command, working_directory, status, created_at, started_at,"
              " environment, user_name, tags, total_steps, completed_steps, current_step_index, metadata)"
              " VALUES (?, 'after', 'bash after.sh', '.', 'pending', ?, ?, '{}', '', '[]', 0, 0, -1, '{}')",
              (run_id, now.isoformat(), now.isoformat()))
    c.execute("INSERT INTO steps (id, execution_id, name, description, step_index, status, created_at, started_at,"
              " stop_on_error, metadata) VALUES (?, ?, 'build', '', 0, 'running', ?, ?, 0, '{}')",
              (step_id, run_id, now.isoformat(), now.isoformat()))
    c.commit()
    log = storage / "executions" / run_id / f"step_0_{step_id}.log"
    log.parent.mkdir(parents=True)
    log.write_text(f"[{now.isoformat()}.000100] first\n")
    assert stepflow("logs", run_id).stdout == b"first\n"
    log.write_text(f"[{now.isoformat()}.000100] first\n[{now.isoformat()}.500000] second\n")  # rewritten whole
    assert stepflow("logs", run_id).stdout == b"first\nsecond\n"
    shown = json.loads(stepflow("show", run_id, "--json").stdout)
    assert shown["status"] == "pending" and shown["line_count"] == 2  # recent: its server may be running it
    c.execute("UPDATE executions SET status = 'completed', exit_code = 0, completed_at = ? WHERE id = ?",
              (now.isoformat(), run_id))
    c.commit()
    c.close()
    shown = json.loads(stepflow("show", run_id, "--json").stdout)
    assert shown["status"] == "completed"
    assert [(s["status"], s.get("legacy_status")) for s in shown["steps"]] == [("completed", "running")]
    assert query(db_path, "SELECT created_ts IS NOT NULL FROM executions WHERE id = ?", (run_id,)) == [(1,)]


# -- crash safety: what a kill -9 leaves, and the next run of the same command -------------------


def test_an_interrupted_log_import_is_unhealthy_and_finished_by_migrate(stepflow: StepflowRunner,
                                                                        legacy_store: dict[str, Any],
                                                                        storage: Path, db_path: Path) -> None:
    assert stepflow("migrate", "--to-wal").returncode == 0
    assert oct(storage.stat().st_mode & 0o777) == "0o700" and oct(db_path.stat().st_mode & 0o777) == "0o600"
    whole = query(db_path, "SELECT execution_id, first_line, data FROM logs ORDER BY execution_id, first_line")
    # What a kill between two import chunks leaves: some runs' lines in, the mark still there,
    # and the staging file of the dead process.
    c = sqlite3.connect(db_path)
    half = [r[0] for r in c.execute("SELECT DISTINCT execution_id FROM logs ORDER BY 1").fetchall()][::2]
    c.executemany("DELETE FROM logs WHERE execution_id = ?", [(h,) for h in half])
    c.executemany("UPDATE executions SET line_count = 0 WHERE id = ?", [(h,) for h in half])
    c.execute("INSERT INTO stepflow_meta VALUES ('legacy_import', 'pending')")
    c.commit()
    c.close()
    staging = db_path.with_name(".stepflow.db-import-999999")  # no such process
    staging.write_bytes(b"x" * 1000)
    health = stepflow("health")
    assert health.returncode == 1 and b"log import was interrupted" in health.stdout
    assert stepflow("ls").returncode == 0  # the store opens meanwhile
    again = stepflow("migrate", "--to-wal")
    assert again.returncode == 0, again.stderr
    assert b"finished the interrupted log import" in again.stdout
    assert query(db_path, "SELECT execution_id, first_line, data FROM logs ORDER BY execution_id, first_line") == whole
    assert query(db_path, "SELECT SUM(line_count) FROM executions") == [(legacy_store["log_lines"],)]
    assert not staging.exists() and stepflow("health").returncode == 0


def test_backup_removes_the_partial_copy_a_kill_left(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                     storage: Path) -> None:
    assert stepflow("migrate", "--to-wal").returncode == 0
    partial = storage / "backups" / "stepflow-20260101T000000Z-manual.db.partial"
    partial.write_bytes(b"half a copy")
    assert stepflow("backup").returncode == 0
    assert not partial.exists()


def test_rollback_killed_between_set_aside_and_restore_never_leaves_an_empty_store(
        stepflow: StepflowRunner, legacy_store: dict[str, Any], storage: Path, db_path: Path) -> None:
    from stepflow.maintenance import rollback

    assert stepflow("migrate", "--to-wal").returncode == 0
    (backup,) = (storage / "backups").iterdir()
    runs = query(db_path, "SELECT COUNT(*) FROM executions")
    # Exactly what a kill -9 right after the rename leaves: the intent file, the database aside.
    aside = db_path.with_name("stepflow-20260101T000000Z-before-rollback.db")
    rollback._write_intent(db_path, aside)
    os.replace(db_path, aside)
    for argv in (("ls",), ("run", "--", "true")):
        refused = stepflow(*argv)
        assert refused.returncode == (0 if argv[0] == "run" else 1)  # a run's command still runs, and exits 0
        assert b"was interrupted before the backup was in place" in refused.stderr, refused.stderr
    assert not db_path.exists()  # no empty store was created in its place
    health = stepflow("health")
    assert health.returncode == 1 and b"rollback --backup\" was interrupted" in health.stdout
    finished = stepflow("rollback", "--backup", str(backup))
    assert finished.returncode == 0, finished.stderr
    assert query(db_path, "SELECT COUNT(*) FROM executions") == runs
    assert aside.exists() and not db_path.with_name("stepflow.db.restoring").exists()
    assert b"interrupted" not in stepflow("health").stdout  # the pre-migrate backup: a legacy store again


def test_a_run_an_old_server_left_pending_after_the_migration_is_found(stepflow: StepflowRunner,
                                                                       legacy_store: dict[str, Any],
                                                                       db_path: Path) -> None:
    assert stepflow("migrate", "--to-wal").returncode == 0
    c = sqlite3.connect(db_path)  # the old server, killed after it saved this run
    c.execute("INSERT INTO executions (id, name, command, status, created_at, environment, tags, metadata)"
              " VALUES ('dead0000-0000-4000-8000-000000000001', 'killed later', 'sh x', 'pending',"
              " '2025-09-01T10:00:00', '{}', '[]', '{}')")
    c.commit()
    c.close()
    health = stepflow("health")
    assert health.returncode == 1 and b"1 legacy run left pending/running" in health.stdout, health.stdout
    assert stepflow("migrate", "--to-wal").returncode == 0
    assert query(db_path, "SELECT status, legacy_status FROM executions WHERE name = 'killed later'") == [
        ("abandoned", "pending")]
    assert stepflow("health").returncode == 0

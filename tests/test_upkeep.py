"""rollback, backup and checkpoint on real stores, with other processes holding and writing them."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import apsw
import pytest

from stepflow.config import load_settings
from stepflow.maintenance.migrate import migrate
from stepflow.store import open_store, schema
from tests import test_migrate
from tests.conftest import StepflowRunner, py, query
from tests.test_migrate import FAST, dump, fs_journal_mode, one_line_error

# Fixtures shared with test_migrate.py (assigned, so pytest finds them here too).
holder = test_migrate.holder
legacy_store = test_migrate.legacy_store
legacy_template = test_migrate.legacy_template


@pytest.fixture
def current_store(db_path: Path) -> Path:
    """A current store with a few runs, as `stepflow run` leaves it."""
    store = open_store(load_settings())
    with store.conn:
        for i in range(5):
            store.conn.execute(
                "INSERT INTO executions (id, name, command, status, created_at, created_ts) VALUES (?, ?, ?, ?, ?, ?)",
                (f"run-{i}", "job", "true", "completed", "2026-01-01T00:00:00+00:00", 1767225600.0 + i))
    store.close()
    return db_path


WRITER = r"""
import apsw, json, os, sys, time, uuid
c = apsw.Connection(sys.argv[1]); c.setbusytimeout(30000)
n, errors = 0, []
open(sys.argv[3], "w").close()
while not os.path.exists(sys.argv[2]):
    try:
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO executions (id, name, command, status, created_at, created_ts)"
                  " VALUES (?, 'writer', 'true', 'running', '2026-01-01T00:00:00+00:00', ?)", (str(uuid.uuid4()), time.time()))
        c.execute("INSERT INTO logs (execution_id, stream, first_line, line_count, ts, data) VALUES ('w', 1, ?, 1, 0, ?)",
                  (n, os.urandom(200)))
        c.execute("COMMIT")
        n += 1
    except Exception as e:
        errors.append(repr(e))
    time.sleep(0.003)
print(json.dumps({"n": n, "errors": errors}))
"""


class SteadyWriter:
    """A separate process committing a row every few ms until stopped."""

    def __init__(self, db: Path, folder: Path) -> None:
        self.stop, up = folder / "writer.stop", folder / "writer.up"
        self.proc = subprocess.Popen(py(WRITER) + [str(db), str(self.stop), str(up)], stdout=subprocess.PIPE)
        while not up.exists():
            time.sleep(0.01)
        time.sleep(0.1)

    def finish(self) -> dict[str, Any]:
        self.stop.touch()
        out, _ = self.proc.communicate(timeout=30)
        return json.loads(out)


# -- rollback --journal -------------------------------------------------------------------------


def test_rollback_journal_names_the_process_holding_the_database(stepflow: StepflowRunner, current_store: Path,
                                                                 holder: Any) -> None:
    idle = holder("SELECT COUNT(*) FROM executions")  # an idle connection is enough to block the switch
    state = dump(current_store)
    result = stepflow("rollback", "--journal", "--wait", "0.5")
    assert result.returncode == 1
    line = one_line_error(result)
    assert line.startswith(f"stepflow: error: cannot switch {current_store} to journal_mode=DELETE: it is open in"
                           f" pid {idle.pid} (")
    assert line.endswith("; stop them and try again (nothing changed)")
    assert dump(current_store) == state and fs_journal_mode(current_store) == "wal"
    idle.kill()
    idle.wait()
    done = stepflow("rollback", "--journal")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith(f"{current_store}: journal_mode WAL -> DELETE (")
    assert query(current_store, "PRAGMA journal_mode") == [("delete",)]
    # stepflow run afterwards records into the store and leaves it in DELETE mode.
    assert stepflow("run", "--", "echo", "after").returncode == 0
    assert query(current_store, "PRAGMA journal_mode") == [("delete",)]
    assert not current_store.with_name("stepflow.db-wal").exists()
    assert query(current_store, "SELECT COUNT(*) FROM executions") == [(6,)]
    again = stepflow("rollback", "--journal")
    assert again.returncode == 0 and "already in journal_mode=DELETE: nothing to do" in again.stdout.decode()


def test_rollback_usage(stepflow: StepflowRunner) -> None:
    for args, message in [
        ((), "say how to roll back: --journal or --backup [PATH]"),
        (("--journal", "--backup"), "say how to roll back: --journal or --backup [PATH]"),
        (("--journal", "x.db"), "x.db: a PATH goes with --backup, not --journal"),
    ]:
        result = stepflow("rollback", *args)
        assert result.returncode == 2
        assert one_line_error(result) == f"stepflow: error: {message}"


# -- rollback --backup --------------------------------------------------------------------------


def test_rollback_backup_gives_back_the_legacy_store_exactly(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                             storage: Path, db_path: Path, tmp_path: Path) -> None:
    pristine = tmp_path / "pristine.db"
    shutil.copyfile(db_path, pristine)
    migrate(load_settings())
    assert stepflow("run", "-n", "after-migrate", "--", "true").returncode == 0
    result = stepflow("rollback", "--backup")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert out.startswith(f"restored {db_path} from {storage / 'backups'}/stepflow-")
    # The legacy store as it was: same schema, same rows, user_version 0, rollback journal.
    restored, original = dump(db_path), dump(pristine)
    assert restored == original and restored["journal_mode"] == "delete"
    assert query(db_path, "PRAGMA journal_mode") == [("delete",)]
    # The migrated database is set aside, whole, and can be brought back.
    (aside,) = [p for p in db_path.parent.iterdir() if p.name.endswith("-before-rollback.db")]
    assert f"set aside     {aside}" in out
    assert query(aside, "PRAGMA user_version") == [(schema.CURRENT_VERSION,)] and fs_journal_mode(aside) == "wal"
    assert query(aside, "SELECT COUNT(*) FROM executions WHERE name = 'after-migrate'") == [(1,)]
    refused = stepflow("ls")
    assert refused.returncode == 1 and "is a StepFlow Monitor store" in one_line_error(refused)
    undo = stepflow("rollback", "--backup", str(aside))
    assert undo.returncode == 0, undo.stderr
    assert query(db_path, "SELECT COUNT(*) FROM executions WHERE name = 'after-migrate'") == [(1,)]
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_rollback_backup_refuses_a_damaged_backup(stepflow: StepflowRunner, current_store: Path,
                                                  tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    shutil.copyfile(current_store, bad)
    c = sqlite3.connect(bad)
    c.execute("PRAGMA writable_schema=ON")
    c.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX idx_executions_status ON executions (name)'"
              " WHERE name = 'idx_executions_status'")
    c.commit()
    c.close()
    state = dump(current_store)
    result = stepflow("rollback", "--backup", str(bad))
    assert result.returncode == 1
    assert one_line_error(result).startswith(f"stepflow: error: {bad} failed its integrity check: row 1 missing"
                                             " from index idx_executions_status")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    result = stepflow("rollback", "--backup", str(garbage))
    assert result.returncode == 1
    assert one_line_error(result) == (f"stepflow: error: {garbage} cannot be verified: database file is damaged"
                                      " or is not a database")
    missing = stepflow("rollback", "--backup")
    assert missing.returncode == 1
    assert one_line_error(missing) == (f"stepflow: error: no backups in {current_store.parent.parent / 'backups'};"
                                       " give one: stepflow rollback --backup PATH")
    assert dump(current_store) == state
    assert [p.name for p in current_store.parent.iterdir() if "rollback" in p.name] == []


def test_rollback_backup_refuses_while_the_database_is_open(stepflow: StepflowRunner, current_store: Path,
                                                            holder: Any) -> None:
    assert stepflow("backup").returncode == 0
    idle = holder("SELECT 1 FROM executions")
    state = dump(current_store)
    result = stepflow("rollback", "--backup", "--wait", "0.5")
    assert result.returncode == 1
    assert f"it is open in pid {idle.pid} (" in one_line_error(result)
    assert dump(current_store) == state and fs_journal_mode(current_store) == "wal"


# -- backup -------------------------------------------------------------------------------------


def test_backup_under_a_steady_writer(stepflow: StepflowRunner, current_store: Path, storage: Path,
                                      tmp_path: Path) -> None:
    writer = SteadyWriter(current_store, tmp_path)
    try:
        results = [stepflow("backup", "--json") for _ in range(3)]
    finally:
        wrote = writer.finish()
    assert wrote["errors"] == [] and wrote["n"] > 0
    paths = []
    for result in results:
        assert result.returncode == 0, result.stderr
        made = json.loads(result.stdout)
        paths.append(Path(made["path"]))
        assert made["integrity"] == "ok" and made["journal_mode"] == "wal"
        assert query(Path(made["path"]), "PRAGMA integrity_check") == [("ok",)]
        assert query(Path(made["path"]), "SELECT COUNT(*) FROM executions") == [(made["counts"]["executions"],)]
    assert len(set(paths)) == 3 and all(p.parent == storage / "backups" for p in paths)
    assert not list((storage / "backups").glob("*.partial"))


def test_backup_destinations(stepflow: StepflowRunner, current_store: Path, tmp_path: Path) -> None:
    into_folder = stepflow("backup", str(tmp_path))
    assert into_folder.returncode == 0, into_folder.stderr
    assert len(list(tmp_path.glob("stepflow-*-manual.db"))) == 1
    target = tmp_path / "copy.db"
    assert stepflow("backup", str(target)).returncode == 0
    assert query(target, "SELECT COUNT(*) FROM executions") == [(5,)]
    exists = stepflow("backup", str(target))
    assert exists.returncode == 1
    assert one_line_error(exists) == f"stepflow: error: {target} exists already; give a new file name or a folder"
    blocked = stepflow("backup", str(target / "nested" / "x.db"))
    assert blocked.returncode == 1
    assert one_line_error(blocked) == (f"stepflow: error: cannot write backups to {target / 'nested'}: Not a"
                                       " directory; give another destination: stepflow backup DEST")


def test_backup_of_a_missing_store(stepflow: StepflowRunner, db_path: Path) -> None:
    result = stepflow("backup")
    assert result.returncode == 1
    assert one_line_error(result) == (f"stepflow: error: no store at {db_path}; record a run with"
                                      " \"stepflow run -- CMD\" or pass --storage")


# -- checkpoint ---------------------------------------------------------------------------------


def wal_with_frames(db: Path) -> apsw.Connection:
    """Write frames into the WAL and keep the connection open, so the WAL stays (no checkpoint on close)."""
    conn = apsw.Connection(str(db))
    conn.execute("PRAGMA wal_autocheckpoint=0").fetchall()
    with conn:
        for i in range(200):
            conn.execute("INSERT INTO logs (execution_id, stream, first_line, line_count, ts, data)"
                         " VALUES ('x', 1, ?, 1, 0, zeroblob(2000))", (i,))
    return conn


def test_checkpoint_truncate_reports_the_wal_before_and_after(stepflow: StepflowRunner, current_store: Path) -> None:
    keep = wal_with_frames(current_store)
    try:
        wal = current_store.with_name("stepflow.db-wal")
        size = wal.stat().st_size
        assert size > 0
        result = stepflow("checkpoint", "--mode", "truncate", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["wal_bytes_before"] == size and report["wal_bytes_after"] == 0
        assert report["checkpointed_frames"] == report["log_frames"] > 0 and report["busy"] is False
        assert wal.stat().st_size == 0
    finally:
        keep.close()


def test_checkpoint_busy_is_reported_plainly(stepflow: StepflowRunner, current_store: Path, holder: Any) -> None:
    holder("BEGIN", "SELECT COUNT(*) FROM executions")  # a reader on the old snapshot
    keep = wal_with_frames(current_store)
    try:
        result = stepflow("checkpoint", "--mode", "restart", env=FAST)
        assert result.returncode == 1
        lines = result.stdout.decode().splitlines()
        assert lines[0].startswith("checkpoint RESTART: ")
        assert lines[1].startswith("busy: other connections kept it from completing")
        passive = stepflow("checkpoint")  # PASSIVE never waits, but frames left behind are "busy" too
        assert passive.returncode == 1 and b"reads the WAL" in passive.stdout
    finally:
        keep.close()


def test_checkpoint_leaves_litestream_alone(stepflow: StepflowRunner, current_store: Path) -> None:
    (current_store.parent / ".stepflow.db-litestream").mkdir()
    keep = wal_with_frames(current_store)
    try:
        size = current_store.with_name("stepflow.db-wal").stat().st_size
        result = stepflow("checkpoint", "--mode", "truncate")
        assert result.returncode == 0
        assert result.stdout.decode().startswith(f"Litestream replicates {current_store}")
        assert current_store.with_name("stepflow.db-wal").stat().st_size == size
    finally:
        keep.close()


def test_checkpoint_on_a_rollback_journal_store(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                db_path: Path) -> None:
    result = stepflow("checkpoint")
    assert result.returncode == 0
    assert result.stdout.decode() == f"{db_path} is in journal_mode=DELETE, not WAL: nothing to checkpoint\n"
    bad = stepflow("checkpoint", "--mode", "sideways")
    assert bad.returncode == 2


def test_rollback_backup_keeps_the_owner_and_mode_of_the_database(stepflow: StepflowRunner, legacy_store: dict[str, Any],
                                                                   db_path: Path) -> None:
    migrate(load_settings())
    os.chown(db_path, 65534, 65534)  # as if the old server ran as nobody
    os.chmod(db_path, 0o664)
    result = stepflow("rollback", "--backup")
    assert result.returncode == 0, result.stderr
    info = db_path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (65534, 65534, 0o664)

"""The real StepFlow Monitor stores (../shared/legacy/real/, written by the old server's own
code) come across whole: every row and legacy field, `ls`, `show`, `show --json`, `logs` on
every run, the same instants under any reader's TZ, and a new `stepflow run` recorded.

Skipped where ../shared/legacy/real is absent (a plain clone): tests/legacy_store.py covers
the same format without it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REAL_LEGACY, ROOT, query
from tests.test_migrate import assert_legacy_fields_kept

pytestmark = pytest.mark.skipif(not REAL_LEGACY.is_dir(), reason=f"no real legacy stores at {REAL_LEGACY}"
                                " (they come with the project's shared folder, not with a clone)")

SERVER_TZ = "Asia/Shanghai"  # the zone the real stores were written in (their README)
STORES = ("prewal", "head", "upgraded")


def copy_store(name: str, where: Path, *, journal: str | None) -> Path:
    """A writable copy of a real store's folder; its storage folder. `journal`: switch it first."""
    shutil.copytree(REAL_LEGACY / name, where / name)
    for path in [where / name, *(where / name).rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    storage = where / name / "storage"
    if journal:
        c = sqlite3.connect(storage / "database" / "stepflow.db")
        assert c.execute(f"PRAGMA journal_mode={journal}").fetchone()[0] == journal
        c.close()
    return storage


def stepflow(*args: str, tz: str = "UTC", cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFLOW_")}
    env["TZ"] = tz
    return subprocess.run([sys.executable, "-m", "stepflow", *args], capture_output=True, env=env,
                          cwd=cwd or Path("/"), timeout=300, stdin=subprocess.DEVNULL)


def check_all(storage: Path, tz: str, *, times_only: bool = False) -> dict[str, Any]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("STEPFLOW_")}, "TZ": tz,
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "legacy_check.py"), str(storage),
                           *(["--times-only"] if times_only else [])],
                          capture_output=True, env=env, cwd="/", timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def expected_lines(storage: Path, run_id: str) -> list[str]:
    """The text of a run's legacy log files, in step order, without the time stamps."""
    folder = storage / "executions" / run_id
    files = sorted(folder.glob("step_*.log"), key=lambda p: (int(p.name.split("_")[1]), p.name)) if (
        folder.is_dir()) else []
    lines = []
    for path in files:
        for raw in path.read_bytes().split(b"\n")[:-1] if path.read_bytes().endswith(b"\n") else (
                path.read_bytes().split(b"\n")):
            end = raw.find(b"] ")
            text = raw[end + 2:] if raw.startswith(b"[") and 0 < end <= 40 else raw
            lines.append(text.decode("utf-8", "surrogateescape"))
    return lines


@pytest.mark.parametrize("journal", [None, "delete"], ids=["as-written", "delete-journal"])
@pytest.mark.parametrize("name", STORES)
def test_real_store_comes_across_whole(name: str, journal: str | None, tmp_path: Path) -> None:
    storage = copy_store(name, tmp_path, journal=journal)
    source = REAL_LEGACY / name / "storage" / "database" / "stepflow.db"
    db = storage / "database" / "stepflow.db"
    migrated = stepflow("migrate", "--to-wal", "--storage", str(storage), "--legacy-tz", SERVER_TZ)
    assert migrated.returncode == 0, migrated.stderr
    # 0 rows lost, 0 legacy fields changed (a status shown otherwise is in legacy_status).
    assert_legacy_fields_kept(source, db)
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert oct(storage.stat().st_mode & 0o777) == "0o700" and oct(db.stat().st_mode & 0o777) == "0o600"
    # No finished run shows a step running; nothing the old server can no longer finish stays open.
    assert query(db, "SELECT COUNT(*) FROM steps s JOIN executions e ON e.id = s.execution_id"
                     " WHERE s.status = 'running' AND e.status NOT IN ('running', 'pending')") == [(0,)]
    assert query(db, "SELECT COUNT(*) FROM executions WHERE status IN ('running', 'pending')") == [(0,)]
    killed = query(db, "SELECT status, legacy_status FROM executions WHERE name = 'killed mid-run'")
    assert killed and set(killed) == {("abandoned", "pending")}
    health = stepflow("health", "--storage", str(storage))
    assert health.returncode == 0, health.stdout
    assert stepflow("db", "check", "--storage", str(storage)).returncode == 0

    ids = {str(r[0]) for r in query(source, "SELECT id FROM executions")}
    utc = check_all(storage, "UTC")
    assert {r["id"] for r in utc["ls"]} == ids
    legacy_steps = {str(r[0]): int(str(r[1])) for r in query(
        source, "SELECT e.id, COUNT(s.id) FROM executions e LEFT JOIN steps s ON s.execution_id = e.id GROUP BY e.id")}
    for run_id in ids:
        got = utc[run_id]
        assert got["rc"] == [0, 0, 0, 0], (run_id, got["show"], got["json"])
        detail = got["json"]
        assert len(detail["steps"]) == legacy_steps[run_id]
        assert got["logs"] == expected_lines(storage, run_id), run_id
        for artifact in detail["artifacts"]:  # a copy the old server kept resolves from anywhere
            if artifact["file_name"]:
                assert Path(artifact["path"]).is_file(), artifact
    # Another reader's zone: the same instants.
    shanghai = check_all(storage, "Asia/Shanghai", times_only=True)
    for run_id in ids:
        a, b = utc[run_id]["json"], shanghai[run_id]["json"]
        assert a == b
        assert [datetime.fromisoformat(t).timestamp() for t in utc[run_id]["stamps"]] == [
            datetime.fromisoformat(t).timestamp() for t in shanghai[run_id]["stamps"]]
    sample = next(iter(utc[i]["json"] for i in ids))
    assert sample["created_at"].endswith("+08:00")

    new_run_records_everything(storage, db)


def new_run_records_everything(storage: Path, db: Path) -> None:
    """A new run into the migrated store records all its steps and lines."""
    script = "; ".join(f"print('STEP_START:s{k}'); print('line {k}')" for k in range(3))
    new = stepflow("run", "--storage", str(storage), "-n", "after-migrate", "--", sys.executable, "-c", script)
    assert new.returncode == 0, new.stderr
    assert query(db, "SELECT COUNT(*) FROM steps s JOIN executions e ON e.id = s.execution_id"
                     " WHERE e.name = 'after-migrate'") == [(3,)]
    assert query(db, "SELECT SUM(l.line_count) FROM logs l JOIN executions e ON e.id = l.execution_id"
                     " WHERE e.name = 'after-migrate'") == [(3,)]


def test_real_store_migrated_by_the_previous_version_is_repaired(tmp_path: Path) -> None:
    """A store left without steps.stop_on_error (schema 6, as the release before this fix left
    `upgraded/`): `health` and `db check` say so, and opening it repairs it."""
    storage = copy_store("upgraded", tmp_path, journal=None)
    db = storage / "database" / "stepflow.db"
    assert stepflow("migrate", "--to-wal", "--storage", str(storage), "--legacy-tz", SERVER_TZ).returncode == 0
    c = sqlite3.connect(db)
    c.execute("ALTER TABLE steps DROP COLUMN stop_on_error")
    c.commit()
    c.close()
    health = stepflow("health", "--storage", str(storage))
    assert health.returncode != 0 and b"schema incomplete: missing steps.stop_on_error" in health.stdout
    check = stepflow("db", "check", "--storage", str(storage))
    assert check.returncode != 0 and b"steps.stop_on_error" in check.stdout
    again = stepflow("migrate", "--to-wal", "--storage", str(storage))
    assert again.returncode == 0 and b"added steps.stop_on_error" in again.stdout, again.stdout
    assert stepflow("health", "--storage", str(storage)).returncode == 0

"""Write a StepFlow Monitor storage folder in the real format of either legacy release.

The project's own builder for legacy stores (tests and benchmarks use it; nothing outside
the repository is needed). It follows the facts of the real stores written by the old
server's own code:

- `prewal`: the release before WAL. `steps` has 13 columns (no `stop_on_error`), no pragma
  is set (DELETE journal), step names keep their marker parameters (`build[duration=5]...`).
- `head`: the last release. `steps` has 14 columns, the database is in WAL mode.

Both: JSON columns never NULL (`{}`, `[]`), written with `json.dumps` defaults (`\\uXXXX`);
naive local `isoformat()` times (microseconds absent when 0); the engine writes only
`pending`, `completed`, `failed` to `executions` (`cancelled`, tags, `is_public=0`,
`retention_days`, other `artifact_type`s come from direct saves); steps completed implicitly
stay `running` in finished runs; the last run is one whose server was killed (`pending`,
`total_steps=0`, one step completed and one `running`); log files `[<naive iso>] <text>`;
artifact copies recorded relative to the server's folder (`storage/artifacts/<eid>/<aid>_<name>`);
a missing artifact file recorded as `./name` with `file_name=""`, `mime_type=""`, size 0.

Usage: python tests/legacy_store.py DIR [--executions N] [--schema prewal|head] [--no-files]
Prints one JSON line with the counts written. Standard library only (the old server used
Python's own sqlite3).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

PREWAL = "prewal"
HEAD = "head"

EXECUTIONS = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, command TEXT NOT NULL, working_directory TEXT,
    status TEXT NOT NULL, exit_code INTEGER, error_message TEXT, created_at TEXT NOT NULL,
    started_at TEXT, completed_at TEXT, environment TEXT, user_name TEXT, tags TEXT,
    total_steps INTEGER DEFAULT 0, completed_steps INTEGER DEFAULT 0,
    current_step_index INTEGER DEFAULT -1, metadata TEXT);
"""
STEPS_PREWAL = """
CREATE TABLE IF NOT EXISTS steps (
    id TEXT PRIMARY KEY, execution_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
    step_index INTEGER NOT NULL, status TEXT NOT NULL, exit_code INTEGER, error_message TEXT,
    created_at TEXT NOT NULL, started_at TEXT, completed_at TEXT, estimated_duration REAL,
    metadata TEXT,
    FOREIGN KEY (execution_id) REFERENCES executions (id));
"""
STEPS_HEAD = STEPS_PREWAL.replace("estimated_duration REAL,\n", "estimated_duration REAL,\n    stop_on_error BOOLEAN DEFAULT 0,")
REST = """
CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT PRIMARY KEY, execution_id TEXT NOT NULL, step_id TEXT, name TEXT NOT NULL,
    description TEXT, file_path TEXT NOT NULL, file_name TEXT, file_size INTEGER DEFAULT 0,
    mime_type TEXT, artifact_type TEXT, created_at TEXT NOT NULL, tags TEXT,
    is_public BOOLEAN DEFAULT 1, retention_days INTEGER, metadata TEXT,
    FOREIGN KEY (execution_id) REFERENCES executions (id),
    FOREIGN KEY (step_id) REFERENCES steps (id));
CREATE INDEX IF NOT EXISTS idx_executions_status ON executions (status);
CREATE INDEX IF NOT EXISTS idx_executions_created_at ON executions (created_at);
CREATE INDEX IF NOT EXISTS idx_executions_user ON executions (user_name);
CREATE INDEX IF NOT EXISTS idx_steps_execution_id ON steps (execution_id);
CREATE INDEX IF NOT EXISTS idx_steps_status ON steps (status);
CREATE INDEX IF NOT EXISTS idx_artifacts_execution_id ON artifacts (execution_id);
CREATE INDEX IF NOT EXISTS idx_artifacts_step_id ON artifacts (step_id);
"""

# (name as the pre-WAL release stored it, name as the last release stored it, metadata, duration, stop)
STEP_KINDS = [
    ("env_check", "env_check", {}, None, False),
    ("build[duration=5][stop_on_error=true]", "build", {"duration": 5, "stop_on_error": True}, 5.0, True),
    ("package{timeout:30}", "package", {"timeout": 30}, None, False),
    ("upload --retries=3", "upload", {"retries": 3}, None, False),
    ("构建 🚀", "构建 🚀", {"备注": "包含冒号: 的值"}, None, False),
    ("test", "test", {"owner": "ops", "empty": ""}, None, False),
]
TEXTS = ["compiling", "测试通过 ✓", "emoji 🎉 ok", "שלום RTL", "[info] bracket prefix", "tab\tinside",
         "ANSI \x1b[32mgreen\x1b[0m", "done"]


def iso(t: datetime) -> str:
    return t.isoformat()  # no microseconds part when they are zero, as the old server wrote


def uid(rnd: random.Random) -> str:
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def build(folder: Path, *, executions: int = 60, schema: str = PREWAL, seed: int = 7, files: bool = True,
          start: datetime | None = None) -> dict[str, Any]:
    """Write a legacy storage folder at `folder` (the server's STEPFLOW_STORAGE_PATH); its counts."""
    rnd = random.Random(seed)
    (folder / "database").mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / "database" / "stepflow.db")
    if schema == HEAD:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=10000", "wal_autocheckpoint=1000"):
            db.execute(f"PRAGMA {pragma}").fetchall()
    db.executescript(EXECUTIONS + (STEPS_HEAD if schema == HEAD else STEPS_PREWAL) + REST)
    counts: dict[str, Any] = {"executions": 0, "steps": 0, "artifacts": 0, "log_lines": 0, "log_files": 0,
                              "running_steps": 0, "pending": 0, "missing_artifacts": 0}
    t0 = start or datetime(2025, 8, 1, 9, 0, 0)
    runs, steps, artifacts = [], [], []
    for i in range(executions):
        ex_id = uid(rnd)
        created = t0 + timedelta(minutes=37 * i, microseconds=0 if i % 5 == 0 else rnd.randrange(1, 999999))
        started = created + timedelta(microseconds=rnd.randrange(1000, 30000))
        killed = i == executions - 1
        direct = i % 25 == 12  # saved through the persistence layer, not by the engine
        rest = i % 10 == 3
        n_steps = 2 if killed else rnd.randrange(0, 5)
        status = "pending" if killed else rnd.choice(["completed"] * 8 + ["failed"])
        if direct:
            status = rnd.choice(["cancelled", "pending", "completed"])
        command = f"bash /srv/jobs/job_{i % 7}.sh --flag"
        name = command if i % 3 == 0 else f"job {i % 7} #{i}"
        exit_code = None if status in ("pending", "cancelled") else (0 if status == "completed" else rnd.choice([1, 2, 7]))
        error = None
        finished = started + timedelta(seconds=rnd.randrange(1, 900), microseconds=rnd.randrange(0, 999999))
        env = {"DEPLOY_ENV": "staging"} if i % 11 == 0 else ({"API_TOKEN": "s3cr3t-token"} if i % 97 == 5 else {})
        tags = ["nightly", "数据", f"t{i}"] if direct else []
        meta: dict[str, Any] = {"nested": {"x": [1, 2, {"y": None}]}, "n": 3.5} if direct else {}
        done = 0
        step_rows = []
        for s in range(n_steps):
            st_id = uid(rnd)
            legacy_name, head_name, st_meta, duration, stop = STEP_KINDS[(i + s) % len(STEP_KINDS)]
            last = s == n_steps - 1
            if killed:
                st_status = "completed" if s == 0 else "running"
            elif last and status == "failed":
                st_status = "failed"
            elif last and rnd.random() < 0.5:
                st_status = "running"  # completed implicitly by the end of the process: never saved again
            elif direct and rnd.random() < 0.3:
                st_status = "skipped"
            else:
                st_status = "completed"
            st_created = started + timedelta(seconds=2 * s, microseconds=rnd.randrange(0, 500))
            st_started = st_created + timedelta(microseconds=rnd.randrange(1, 50))
            st_done = None if st_status == "running" else iso(st_started + timedelta(seconds=1, microseconds=rnd.randrange(0, 999999)))
            st_exit = None if st_status in ("running", "skipped") else (0 if st_status == "completed" else exit_code)
            st_error = f"exit code {st_exit}" if st_status == "failed" else None
            done += st_status == "completed"
            counts["running_steps"] += st_status == "running"
            if schema == HEAD and stop and st_status == "failed" and status == "failed" and i % 2:
                status, error = "completed", f"Critical step failed: {head_name} - connection refused"
            row = [st_id, ex_id, legacy_name if schema == PREWAL else head_name, "", s, st_status, st_exit, st_error,
                   iso(st_created), iso(st_started), st_done, duration]
            if schema == HEAD:
                row.append(1 if stop else 0)
            row.append(json.dumps(st_meta))
            step_rows.append(row)
            if files and not (direct or st_status == "skipped"):
                n_lines = 3000 if i == 7 and s == 0 else rnd.randrange(0, 6)
                if n_lines:
                    log_dir = folder / "executions" / ex_id
                    log_dir.mkdir(parents=True, exist_ok=True)
                    with open(log_dir / f"step_{s}_{st_id}.log", "w", encoding="utf-8") as f:
                        for k in range(n_lines):
                            ts = st_started + timedelta(microseconds=1 + 731 * k + rnd.randrange(0, 500))
                            text = TEXTS[(i + k) % len(TEXTS)] if i != 9 else "x" * 20000
                            f.write(f"[{iso(ts)}] {text} {k}\n")
                    counts["log_lines"] += n_lines
                    counts["log_files"] += 1
            if s == 0 and (i % 4 == 1 or direct) and not killed:
                art_id = uid(rnd)
                base = f"report_{i}.html" if i % 8 != 5 else f"报告 ü {i}.txt"
                missing = i % 12 == 9
                if missing:
                    path, file_name, mime, size = f"./{base}", "", "", 0
                    counts["missing_artifacts"] += 1
                else:
                    path = f"storage/artifacts/{ex_id}/{art_id}_{base}"
                    content = f"<html>report {i}</html>\n".encode()
                    file_name, mime, size = base, "text/html", len(content)
                    if files:
                        stored = folder / "artifacts" / ex_id / f"{art_id}_{base}"
                        stored.parent.mkdir(parents=True, exist_ok=True)
                        stored.write_bytes(content)
                    else:
                        counts["missing_artifacts"] += 1
                artifacts.append((art_id, ex_id, st_id, base, "Test Report" if not direct else "报告 📄", path,
                                  file_name, size, mime, "report" if direct else "other", iso(st_started),
                                  json.dumps(["keep"] if direct else []), 0 if direct and i % 2 else 1,
                                  7 if direct else None, json.dumps({"sha": "abc"} if direct else {})))
        steps += step_rows
        counts["pending"] += status == "pending"
        runs.append((
            ex_id, name, command, "." if rest else f"/srv/jobs/w{i % 3}", status, exit_code, error,
            iso(created), None if killed else iso(started),
            None if status in ("pending", "cancelled") or killed else iso(finished),
            json.dumps(env), "" if rest else (None if i % 5 == 0 else "ops"), json.dumps(tags),
            0 if killed else n_steps, done, -1 if killed else n_steps - 1, json.dumps(meta)))
        if len(runs) >= 5000:
            _flush(db, runs, steps, artifacts)
    _flush(db, runs, steps, artifacts)
    counts["executions"] = executions
    counts["steps"] = db.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
    counts["artifacts"] = db.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0]
    counts["journal_mode"] = db.execute("PRAGMA journal_mode").fetchone()[0]
    if schema == HEAD:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    db.close()
    return counts


def _flush(db: sqlite3.Connection, runs: list[Any], steps: list[Any], artifacts: list[Any]) -> None:
    db.executemany(f"INSERT INTO executions VALUES ({','.join('?' * 17)})", runs)
    if steps:
        db.executemany(f"INSERT INTO steps VALUES ({','.join('?' * len(steps[0]))})", steps)
    db.executemany(f"INSERT INTO artifacts VALUES ({','.join('?' * 15)})", artifacts)
    db.commit()
    runs.clear()
    steps.clear()
    artifacts.clear()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--executions", type=int, default=60)
    ap.add_argument("--schema", choices=(PREWAL, HEAD), default=PREWAL)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-files", action="store_true", help="rows only: no log or artifact files")
    args = ap.parse_args()
    print(json.dumps(build(args.dir, executions=args.executions, schema=args.schema, seed=args.seed,
                           files=not args.no_files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

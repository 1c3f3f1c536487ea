"""Catch up with a StepFlow Monitor server that keeps running after the migration.

Zero downtime lets the old server go on writing with its own sqlite3: its rows get their
`created_ts` from a trigger (schema m006), but it also rewrites step log files, leaves steps
`running` in runs it finished, and may die leaving runs `pending`. Those are caught up
lazily, when a legacy run is read (`show`, `logs`: `refresh_run`), and for every run by the
next `stepflow migrate --to-wal`. A legacy run is one with no stepflow pid in a store that
came from StepFlow Monitor (its `stepflow_meta` records the legacy zone).

Best effort on the read path: a busy or read-only store is read as it is, never an error.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import apsw

from stepflow.maintenance import legacy, legacy_status
from stepflow.store import schema, zone
from stepflow.store.connection import immediate
from stepflow.store.models import OPEN_STATUSES, Run

BUSY_MS = 250  # a read waits at most this long to write what it caught up


def changed_files(conn: apsw.Connection, storage: Path, run_id: str) -> bool:
    """Whether the run's legacy log files differ from those imported (new, rewritten). Read-only."""
    folder = storage / legacy.EXECUTIONS_FOLDER / run_id
    current = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if legacy.LOG_FILE.match(entry.name):
                st = entry.stat()
                current[entry.name] = (st.st_size, st.st_mtime_ns)
    rows: list[tuple[Any, ...]] = conn.execute(
        "SELECT name, size, mtime_ns FROM legacy_log_files WHERE execution_id = ?", (run_id,)).fetchall()
    recorded = {str(n): (int(s), int(m)) for n, s, m in rows}
    return current != recorded


def refresh_run(conn: apsw.Connection, db: Path, run: Run, *, max_line: int) -> bool:
    """Bring one legacy run up to date (log files, step and run statuses); True if changed.

    The caller reads the run again when this returns True.
    """
    if run.pid is not None or not schema.has_table(conn, "legacy_log_files"):
        return False
    name = schema.meta(conn, zone.LEGACY_TZ_KEY)
    if name is None:
        return False
    storage = db.parent.parent
    files_changed = changed_files(conn, storage, run.id)
    open_run = run.status in OPEN_STATUSES
    running_steps = conn.execute(
        "SELECT 1 FROM steps WHERE execution_id = ? AND status IN ('running', 'pending') LIMIT 1", (run.id,)
    ).fetchall()
    if not files_changed and not open_run and not running_steps:
        return False
    legacy_zone = zone.parse_zone(name)
    staging = db.with_name(f".{db.name}-import-{os.getpid()}-run")
    busy = BUSY_MS
    try:
        if files_changed:
            legacy.stage_logs(storage, staging, max_line=max_line, zone=legacy_zone, only={run.id})
        conn.setbusytimeout(busy)
        changed = False
        with immediate(conn):
            if files_changed:
                conn.execute("ATTACH DATABASE ? AS staged", (str(staging),))
                legacy.import_chunk(conn, 1, 1, replace=True)
                changed = True
            if open_run:
                changed |= legacy_status.abandon_open_runs(conn, db, storage, zone=legacy_zone, only=run.id) > 0
            changed |= legacy_status.settle_steps(conn, only=run.id) > 0
        with contextlib.suppress(apsw.Error):
            conn.execute("DETACH DATABASE staged")
        return changed
    except (apsw.Error, OSError):
        with contextlib.suppress(apsw.Error):
            conn.execute("DETACH DATABASE staged")
        return False
    finally:
        for path in (staging, staging.with_name(staging.name + "-journal")):
            with contextlib.suppress(OSError):
                path.unlink()


def refresh(store: object, run: Run, *, max_line: int = 1 << 16) -> Run:
    """`refresh_run` on a SqliteStore's connection; the run as it now is. Never raises."""
    conn = getattr(store, "conn", None)
    db = getattr(store, "path", None)
    if conn is None or db is None:
        return run
    try:
        if refresh_run(conn, Path(db), run, max_line=max_line):
            fresh = store.get_run(run.id)  # type: ignore[attr-defined]
            if fresh is not None:
                return fresh  # type: ignore[no-any-return]
    except (apsw.Error, OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(apsw.Error, AttributeError):
            conn.setbusytimeout(store.busy_ms)  # type: ignore[attr-defined]
    return run

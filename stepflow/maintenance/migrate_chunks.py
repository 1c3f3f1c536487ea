"""The parts of `stepflow migrate` that run after the schema transaction, with the lock released:
each a sequence of short IMMEDIATE transactions, sized to hold the write lock about
`chunk_seconds`, so runs record and readers read meanwhile. A kill between two leaves whole
units done and the store's `legacy_import` mark in place: the next migrate does the rest.
"""

from __future__ import annotations

import contextlib
import time
from datetime import tzinfo
from pathlib import Path
from typing import Any

import apsw

from stepflow.config import Settings
from stepflow.errors import StoreError
from stepflow.maintenance import legacy, legacy_status
from stepflow.maintenance.migrate_report import MigrationReport
from stepflow.store import zone
from stepflow.store.connection import immediate, store_error


def fill_times(conn: apsw.Connection, settings: Settings, report: MigrationReport, legacy_zone: tzinfo, *,
                chunk_seconds: float) -> None:
    """created_ts of the legacy rows, read in the recorded zone, a range of rowids at a time."""
    def legacy_epoch(text: Any) -> float | None:
        return zone.epoch(text if isinstance(text, str) else None, legacy_zone)

    conn.create_scalar_function("stepflow_legacy_epoch", legacy_epoch, 1, deterministic=True)  # type: ignore[arg-type]
    bounds: tuple[Any, ...] = conn.execute(
        "SELECT COALESCE(MIN(rowid), 0), COALESCE(MAX(rowid), -1) FROM executions").fetchall()[0]
    low, high = int(bounds[0]), int(bounds[1])
    first, size = low, 2000
    try:
        while first <= high:
            last = first + size - 1
            began = time.monotonic()
            with immediate(conn):
                held = time.monotonic()
                conn.execute("UPDATE executions SET created_ts = stepflow_legacy_epoch(created_at)"
                             " WHERE rowid BETWEEN ? AND ? AND pid IS NULL", (first, last))
            took = time.monotonic() - held
            report.lock_wait_max = max(report.lock_wait_max, held - began)
            report.lock_hold_max = max(report.lock_hold_max, took)
            report.chunks += 1
            first = last + 1
            size = max(100, min(50000, int(size * chunk_seconds / max(took, 1e-3))))
    except apsw.Error as exc:
        raise StoreError(f"{store_error(exc, settings.database)}; the migration is done but not every run's time is"
                         " in yet: run \"stepflow migrate --to-wal\" again to finish it") from exc


def import_logs(conn: apsw.Connection, settings: Settings, report: MigrationReport, staging: Path, *,
            chunk_seconds: float, replace: bool = False) -> None:
    """The staged log lines, a whole number of runs per short IMMEDIATE transaction.

    Each chunk is sized so that its transaction holds the write lock about `chunk_seconds`;
    the longest hold is kept in the report. A kill between two chunks leaves whole runs
    imported and the `pending` mark in place: the next migrate imports the rest.
    """
    db = settings.database
    conn.execute("ATTACH DATABASE ? AS staged", (str(staging),))
    try:
        total = legacy.staged_runs(conn)
        first, size = 1, 500
        while first <= total:
            last = min(total, first + size - 1)
            began = time.monotonic()
            with immediate(conn):
                held = time.monotonic()
                runs, lines = legacy.import_chunk(conn, first, last, replace=replace)
            took = time.monotonic() - held
            report.lock_wait_max = max(report.lock_wait_max, held - began)
            report.lock_hold_max = max(report.lock_hold_max, took)
            report.log_runs += runs
            report.log_lines += lines
            report.chunks += 1
            first = last + 1
            size = max(50, min(20000, int(size * chunk_seconds / max(took, 1e-3))))
    except apsw.Error as exc:
        raise StoreError(f"{store_error(exc, db)}; the migration is done but {report.log_runs} runs' logs are in"
                         " so far: run \"stepflow migrate --to-wal\" again to import the rest") from exc
    finally:
        with contextlib.suppress(apsw.Error):
            conn.execute("DETACH DATABASE staged")


def settle_steps(conn: apsw.Connection, settings: Settings, report: MigrationReport, *,
                 chunk_seconds: float) -> None:
    """Steps left `running` in finished legacy runs (legacy_status.settle_steps), by rowid ranges."""
    bounds: tuple[Any, ...] = conn.execute(
        "SELECT COALESCE(MIN(rowid), 0), COALESCE(MAX(rowid), -1) FROM steps").fetchall()[0]
    first, high, size = int(bounds[0]), int(bounds[1]), 5000
    try:
        while first <= high:
            last = first + size - 1
            began = time.monotonic()
            with immediate(conn):
                held = time.monotonic()
                report.steps_settled += legacy_status.settle_steps(conn, rowids=(first, last))
            took = time.monotonic() - held
            report.lock_wait_max = max(report.lock_wait_max, held - began)
            report.lock_hold_max = max(report.lock_hold_max, took)
            report.chunks += 1
            first = last + 1
            size = max(100, min(100000, int(size * chunk_seconds / max(took, 1e-3))))
    except apsw.Error as exc:
        raise StoreError(f"{store_error(exc, settings.database)}; the migration is done but not every step is"
                         " settled yet: run \"stepflow migrate --to-wal\" again to finish it") from exc

"""Open an existing database without changing it, and tell what it is. Read-only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw

from stepflow.config import Settings
from stepflow.errors import StoreError
from stepflow.record import record
from stepflow.store import schema
from stepflow.store.connection import connect, scalar, store_error

COUNTED = ("executions", "steps", "artifacts")

LEGACY, OLDER, CURRENT, NEWER, EMPTY = "legacy", "older", "current", "newer", "empty"
KIND_NAMES = {
    LEGACY: "a StepFlow Monitor store",
    OLDER: "a stepflow store with an older schema",
    CURRENT: "a current stepflow store",
    NEWER: "a store written by a newer stepflow",
    EMPTY: "an empty database",
}


@record(frozen=True)
class Probe:
    """What a database is: kind, schema version, journal mode."""

    kind: str
    version: int
    journal_mode: str


def require(db: Path) -> None:
    """Raise unless `db` exists: upkeep commands never create a store."""
    if not db.exists():
        raise StoreError(f"no store at {db}; record a run with \"stepflow run -- CMD\" or pass --storage")


@contextlib.contextmanager
def existing(settings: Settings, *, readonly: bool = False, busy_ms: int | None = None) -> Iterator[apsw.Connection]:
    """A connection to the store's existing database, closed afterwards; never creates one."""
    db = settings.database
    require(db)
    conn = connect(db, settings, readonly=readonly)
    try:
        if busy_ms is not None:
            conn.setbusytimeout(busy_ms)
        yield conn
    finally:
        conn.close()


def probe(conn: apsw.Connection, db: Path) -> Probe:
    """Tell a legacy store from an older, current, newer stepflow store or an empty file."""
    try:
        version = schema.user_version(conn)
        mode = str(scalar(conn, "PRAGMA journal_mode"))
        if version == 0:
            kind = LEGACY if schema.has_table(conn, "executions") else EMPTY
        elif version < schema.CURRENT_VERSION:
            kind = OLDER
        elif version == schema.CURRENT_VERSION:
            kind = CURRENT
        else:
            kind = NEWER
    except apsw.Error as exc:
        raise store_error(exc, db) from exc
    return Probe(kind, version, mode)


def counts(conn: apsw.Connection, tables: tuple[str, ...] = COUNTED) -> dict[str, int]:
    """Row counts of the tables that exist among `tables`."""
    out: dict[str, int] = {}
    for table in tables:
        if schema.has_table(conn, table):
            out[table] = int(scalar(conn, f"SELECT COUNT(*) FROM {table}"))
    return out


def pragma(conn: apsw.Connection, name: str) -> Any:
    return scalar(conn, f"PRAGMA {name}")

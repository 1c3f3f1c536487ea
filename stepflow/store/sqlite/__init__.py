"""The SQLite backend: one database file in WAL mode, in StepFlow Monitor's table layout.

Everything SQLite is here or beside it (connection.py: pragmas, IMMEDIATE transactions;
schema.py: migrations): column encoding, legacy table and column names, PRAGMA data_version.
"""

from __future__ import annotations

from stepflow.store.sqlite.store import SqliteStore, open_sqlite, wal_path

__all__ = ["SqliteStore", "open_sqlite", "wal_path"]

"""The schema as ordered migrations, each applied with its version bump in one transaction.

The first migration is the legacy StepFlow Monitor schema itself (`CREATE TABLE IF NOT EXISTS`),
so a legacy store and a new one follow the same path: user_version 0 -> CURRENT_VERSION.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

import apsw

from stepflow.store.connection import immediate, scalar

Migration = Callable[[apsw.Connection], None]

# `migrate` of a big legacy store fills created_ts itself afterwards, in short transactions
# and in the recorded legacy zone, instead of in one UPDATE of every row inside the schema
# transaction (m002 and m006 fill it otherwise).
DEFER_CREATED_TS: contextvars.ContextVar[bool] = contextvars.ContextVar("defer_created_ts", default=False)

# Seconds since the epoch of a stored time, naive ones read as local time, on any SQLite.
EPOCH_OF = "((julianday({}, 'utc') - 2440587.5) * 86400.0)"


def m001_legacy_tables(conn: apsw.Connection) -> None:
    """The tables and indexes exactly as StepFlow Monitor created them (no-op on a legacy store)."""
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS executions (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, command TEXT NOT NULL, working_directory TEXT,
            status TEXT NOT NULL, exit_code INTEGER, error_message TEXT, created_at TEXT NOT NULL,
            started_at TEXT, completed_at TEXT, environment TEXT, user_name TEXT, tags TEXT,
            total_steps INTEGER DEFAULT 0, completed_steps INTEGER DEFAULT 0,
            current_step_index INTEGER DEFAULT -1, metadata TEXT);
        CREATE TABLE IF NOT EXISTS steps (
            id TEXT PRIMARY KEY, execution_id TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
            step_index INTEGER NOT NULL, status TEXT NOT NULL, exit_code INTEGER, error_message TEXT,
            created_at TEXT NOT NULL, started_at TEXT, completed_at TEXT, estimated_duration REAL,
            stop_on_error BOOLEAN DEFAULT 0, metadata TEXT,
            FOREIGN KEY (execution_id) REFERENCES executions (id));
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
    )


def m002_run_columns(conn: apsw.Connection) -> None:
    """What stepflow records beyond the legacy columns: who ran it, resources, warnings, hashes.

    created_ts orders and filters runs: legacy created_at values are naive local times and new
    ones carry an offset, so the text alone does not sort. Rows already there get theirs in
    m006 (or from `migrate`, in the legacy zone).
    """
    conn.execute(
        """
        ALTER TABLE executions ADD COLUMN created_ts REAL;
        ALTER TABLE executions ADD COLUMN host TEXT;
        ALTER TABLE executions ADD COLUMN pid INTEGER;
        ALTER TABLE executions ADD COLUMN pid_started REAL;
        ALTER TABLE executions ADD COLUMN warnings TEXT;
        ALTER TABLE executions ADD COLUMN cpu_seconds REAL;
        ALTER TABLE executions ADD COLUMN peak_rss INTEGER;
        ALTER TABLE executions ADD COLUMN max_processes INTEGER;
        ALTER TABLE executions ADD COLUMN line_count INTEGER DEFAULT 0;
        ALTER TABLE executions ADD COLUMN lost_lines INTEGER DEFAULT 0;
        ALTER TABLE steps ADD COLUMN cpu_seconds REAL;
        ALTER TABLE steps ADD COLUMN peak_rss INTEGER;
        ALTER TABLE steps ADD COLUMN max_processes INTEGER;
        ALTER TABLE artifacts ADD COLUMN sha256 TEXT;
        ALTER TABLE artifacts ADD COLUMN source_path TEXT;
        CREATE INDEX idx_executions_created_ts ON executions (created_ts);
        CREATE INDEX idx_executions_name ON executions (name, created_ts);
        """
    )


def m003_logs(conn: apsw.Connection) -> None:
    """Output as blocks of lines: one row per read of one stream in one step, not one per line.

    A block holds `line_count` lines joined by b"\\n", numbered from `first_line` in the order
    stepflow read them across both streams. `cut` counts bytes dropped from an over-long line.
    """
    conn.execute(
        """
        CREATE TABLE logs (
            id INTEGER PRIMARY KEY, execution_id TEXT NOT NULL, step_index INTEGER,
            stream INTEGER NOT NULL, first_line INTEGER NOT NULL, line_count INTEGER NOT NULL,
            ts REAL NOT NULL, data BLOB NOT NULL, cut INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX idx_logs_execution ON logs (execution_id, first_line);
        """
    )


def m004_created_ts_trigger(conn: apsw.Connection) -> None:
    """Fill created_ts for rows inserted without it, as a StepFlow Monitor server still writing does.

    Zero-downtime migration lets the old server go on writing; its rows name only the legacy
    columns, and without created_ts they would sort last and escape `ls --since`.
    """
    conn.execute(
        """
        CREATE TRIGGER executions_created_ts AFTER INSERT ON executions
        WHEN NEW.created_ts IS NULL
        BEGIN
            UPDATE executions SET created_ts = unixepoch(NEW.created_at, 'utc', 'subsec')
            WHERE rowid = NEW.rowid;
        END;
        """
    )


def m005_status_by_time(conn: apsw.Connection) -> None:
    """`ls --status S` newest first without sorting every run of that status (flat at 1M runs)."""
    conn.execute("CREATE INDEX idx_executions_status_created ON executions (status, created_ts)")


def m006_created_ts_on_any_sqlite(conn: apsw.Connection) -> None:
    """The m004 trigger, written so an old server's SQLite can run it.

    A StepFlow Monitor server still writing after the migration runs the trigger in its own
    SQLite, which may predate unixepoch()'s 'subsec' (3.42) or unixepoch() itself (3.38):
    julianday() works everywhere. Rows such a server wrote meanwhile get their time now.
    """
    conn.execute(
        f"""
        DROP TRIGGER IF EXISTS executions_created_ts;
        CREATE TRIGGER executions_created_ts AFTER INSERT ON executions
        WHEN NEW.created_ts IS NULL
        BEGIN
            UPDATE executions SET created_ts = {EPOCH_OF.format("NEW.created_at")}
            WHERE rowid = NEW.rowid;
        END;
        """
    )
    if not DEFER_CREATED_TS.get():
        conn.execute(f"UPDATE executions SET created_ts = {EPOCH_OF.format('created_at')} WHERE created_ts IS NULL")


# Every column a StepFlow Monitor release may have created, with the declaration of the last
# release: an install upgraded in place never got the later ones (its CREATE TABLE IF NOT
# EXISTS does not add columns), so a store's columns depended on the release that wrote it.
LEGACY_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "executions": (("working_directory", "TEXT"), ("exit_code", "INTEGER"), ("error_message", "TEXT"),
                   ("started_at", "TEXT"), ("completed_at", "TEXT"), ("environment", "TEXT"),
                   ("user_name", "TEXT"), ("tags", "TEXT"), ("total_steps", "INTEGER DEFAULT 0"),
                   ("completed_steps", "INTEGER DEFAULT 0"), ("current_step_index", "INTEGER DEFAULT -1"),
                   ("metadata", "TEXT")),
    "steps": (("description", "TEXT"), ("exit_code", "INTEGER"), ("error_message", "TEXT"),
              ("started_at", "TEXT"), ("completed_at", "TEXT"), ("estimated_duration", "REAL"),
              ("stop_on_error", "BOOLEAN DEFAULT 0"), ("metadata", "TEXT")),
    "artifacts": (("step_id", "TEXT"), ("description", "TEXT"), ("file_name", "TEXT"),
                  ("file_size", "INTEGER DEFAULT 0"), ("mime_type", "TEXT"), ("artifact_type", "TEXT"),
                  ("tags", "TEXT"), ("is_public", "BOOLEAN DEFAULT 1"), ("retention_days", "INTEGER"),
                  ("metadata", "TEXT")),
}


def columns(conn: apsw.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}


def add_missing_legacy_columns(conn: apsw.Connection) -> list[str]:
    """ALTER TABLE ... ADD COLUMN for every legacy column `conn` lacks; `table.column` of each added.

    Idempotent, and cheap (adding a column rewrites no row): run by m007 and again by
    `migrate` and on open when a store still lacks one.
    """
    added = []
    for table, wanted in LEGACY_COLUMNS.items():
        if not has_table(conn, table):
            continue
        have = columns(conn, table)
        for name, decl in wanted:
            if name not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                added.append(f"{table}.{name}")
    return added


def m007_complete_legacy_schema(conn: apsw.Connection) -> None:
    """The same schema whichever release wrote the store, the legacy values beside stepflow's.

    - columns a StepFlow Monitor release lacked (`steps.stop_on_error` before WAL) are added;
    - `legacy_status` keeps the status the old server wrote when stepflow shows another one
      (a run it can never finish is `abandoned`; a step it never saved again in a finished run);
    - `stepflow_meta` holds facts about the store, such as the time zone of naive legacy times;
    - `legacy_log_files` records which legacy step log files were imported, at which size and
      mtime, so files an old server rewrites after the migration are imported again.
    """
    add_missing_legacy_columns(conn)
    conn.execute(
        """
        ALTER TABLE executions ADD COLUMN legacy_status TEXT;
        ALTER TABLE steps ADD COLUMN legacy_status TEXT;
        CREATE TABLE IF NOT EXISTS stepflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS legacy_log_files (
            execution_id TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
            PRIMARY KEY (execution_id, name));
        """
    )


def m008_spooled_batches(conn: apsw.Connection) -> None:
    """Which spooled batches the store has (stepflow.store.spool): a batch is replayed once."""
    conn.execute(
        "CREATE TABLE spooled (execution_id TEXT NOT NULL, seq INTEGER NOT NULL, applied_at REAL NOT NULL,"
        " PRIMARY KEY (execution_id, seq))"
    )


MIGRATIONS: tuple[Migration, ...] = (
    m001_legacy_tables, m002_run_columns, m003_logs, m004_created_ts_trigger, m005_status_by_time,
    m006_created_ts_on_any_sqlite, m007_complete_legacy_schema, m008_spooled_batches,
)
CURRENT_VERSION = len(MIGRATIONS)


def user_version(conn: apsw.Connection) -> int:
    return int(scalar(conn, "PRAGMA user_version"))


def has_table(conn: apsw.Connection, name: str) -> bool:
    rows = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
    return rows.fetchone() is not None


def is_legacy(conn: apsw.Connection) -> bool:
    """A StepFlow Monitor store: its tables exist but no stepflow migration ever ran."""
    return user_version(conn) == 0 and has_table(conn, "executions")


_EXPECTED: dict[str, set[str]] = {}


def expected_columns() -> dict[str, set[str]]:
    """The columns of each table in a store made by this stepflow (built once, in memory)."""
    if not _EXPECTED:
        mem = apsw.Connection(":memory:")
        try:
            apply_migrations(mem)
            for (name,) in mem.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
                _EXPECTED[str(name)] = columns(mem, str(name))
        finally:
            mem.close()
    return _EXPECTED


def missing_columns(conn: apsw.Connection) -> list[str]:
    """`table.column` of each column a current store has and this one lacks. Read-only."""
    missing = []
    for table, wanted in sorted(expected_columns().items()):
        if not has_table(conn, table):
            missing.append(table)
            continue
        missing += [f"{table}.{c}" for c in sorted(wanted - columns(conn, table))]
    return missing


def meta(conn: apsw.Connection, key: str) -> str | None:
    """A value of `stepflow_meta`, or None (no such key, or a store without the table). Read-only."""
    if not has_table(conn, "stepflow_meta"):
        return None
    value = scalar(conn, "SELECT value FROM stepflow_meta WHERE key = ?", (key,))
    return None if value is None else str(value)


def set_meta(conn: apsw.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO stepflow_meta (key, value) VALUES (?, ?)"
                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def apply_migrations(conn: apsw.Connection, *, upto: int = CURRENT_VERSION) -> list[str]:
    """Apply the migrations the database lacks, each in its own IMMEDIATE transaction.

    Safe when several processes open a new store at once: the version is read again under
    the write lock, so each migration runs exactly once. Returns the names applied.
    """
    applied: list[str] = []
    if user_version(conn) >= upto:
        return applied  # current: one PRAGMA, every run's open (start-up, issue 17)
    for version, migration in enumerate(MIGRATIONS[:upto], start=1):
        if user_version(conn) >= version:
            continue
        with immediate(conn):
            if user_version(conn) >= version:
                continue
            migration(conn)
            conn.execute(f"PRAGMA user_version={version}")
        applied.append(migration.__name__)
    return applied

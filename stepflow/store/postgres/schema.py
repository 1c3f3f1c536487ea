"""The PostgreSQL schema as ordered migrations, recorded in a table of their own.

Table and column names are SQLite's (StepFlow Monitor's legacy layout plus stepflow's
columns), so `SELECT COUNT(*) FROM executions` means the same on both. What differs is what
PostgreSQL needs: ids in the "C" collation (prefix ranges and ORDER BY id byte-wise, as in
SQLite), an identity column `seq` standing in for SQLite's rowid as the tie-breaker, output in
bytea keyed by (execution_id, first_line) so a retried batch never duplicates a line.

`stepflow_migrations` holds one row per applied migration. Migrations run on open, under a
transaction-scoped advisory lock, so hosts opening a new database at once apply each exactly once.
"""

from __future__ import annotations

import psycopg

from stepflow.errors import StoreError

LOCK_KEY = 0x5374_6570_666C  # pg_advisory_xact_lock key: "Stepfl"

M001_TABLES = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT COLLATE "C" PRIMARY KEY, name TEXT NOT NULL, command TEXT NOT NULL, working_directory TEXT,
    status TEXT NOT NULL, exit_code INTEGER, error_message TEXT, created_at TEXT NOT NULL,
    started_at TEXT, completed_at TEXT, environment TEXT, user_name TEXT, tags TEXT,
    total_steps INTEGER DEFAULT 0, completed_steps INTEGER DEFAULT 0,
    current_step_index INTEGER DEFAULT -1, metadata TEXT,
    created_ts DOUBLE PRECISION, host TEXT, pid INTEGER, pid_started DOUBLE PRECISION, warnings TEXT,
    cpu_seconds DOUBLE PRECISION, peak_rss BIGINT, max_processes INTEGER,
    line_count BIGINT DEFAULT 0, lost_lines BIGINT DEFAULT 0,
    seq BIGINT GENERATED ALWAYS AS IDENTITY);
CREATE TABLE IF NOT EXISTS steps (
    id TEXT COLLATE "C" PRIMARY KEY, execution_id TEXT COLLATE "C" NOT NULL, name TEXT NOT NULL,
    description TEXT, step_index INTEGER NOT NULL, status TEXT NOT NULL, exit_code INTEGER,
    error_message TEXT, created_at TEXT NOT NULL, started_at TEXT, completed_at TEXT,
    estimated_duration DOUBLE PRECISION, stop_on_error BOOLEAN DEFAULT FALSE, metadata TEXT,
    cpu_seconds DOUBLE PRECISION, peak_rss BIGINT, max_processes INTEGER,
    seq BIGINT GENERATED ALWAYS AS IDENTITY);
CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT COLLATE "C" PRIMARY KEY, execution_id TEXT COLLATE "C" NOT NULL, step_id TEXT COLLATE "C",
    name TEXT NOT NULL, description TEXT, file_path TEXT NOT NULL, file_name TEXT,
    file_size BIGINT DEFAULT 0, mime_type TEXT, artifact_type TEXT, created_at TEXT NOT NULL, tags TEXT,
    is_public BOOLEAN DEFAULT TRUE, retention_days INTEGER, metadata TEXT, sha256 TEXT, source_path TEXT,
    seq BIGINT GENERATED ALWAYS AS IDENTITY);
CREATE TABLE IF NOT EXISTS logs (
    execution_id TEXT COLLATE "C" NOT NULL, step_index INTEGER, stream SMALLINT NOT NULL,
    first_line BIGINT NOT NULL, line_count INTEGER NOT NULL, ts DOUBLE PRECISION NOT NULL,
    data BYTEA NOT NULL, cut INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT logs_execution_first_line UNIQUE (execution_id, first_line));
-- Newest first is DESC NULLS LAST, as SQLite orders a NULL created_ts (smallest) in DESC.
CREATE INDEX IF NOT EXISTS idx_executions_created_ts ON executions (created_ts DESC NULLS LAST, seq DESC);
CREATE INDEX IF NOT EXISTS idx_executions_name ON executions (name, created_ts DESC NULLS LAST, seq DESC);
CREATE INDEX IF NOT EXISTS idx_executions_status_created
    ON executions (status, created_ts DESC NULLS LAST, seq DESC);
CREATE INDEX IF NOT EXISTS idx_steps_execution_id ON steps (execution_id, step_index, seq);
CREATE INDEX IF NOT EXISTS idx_artifacts_execution_id ON artifacts (execution_id, seq);
"""

# Tags are JSON text (legacy rows may hold text that is not JSON): test membership without
# letting one bad row fail the query. Text without a backslash holds every JSON string as it
# reads, so a row whose text has neither the tag nor a backslash cannot hold the tag: most rows
# are answered so, without parsing, and without the subtransaction the EXCEPTION block costs.
# PARALLEL UNSAFE: a parallel worker cannot start that subtransaction.
M002_TAG_FUNCTION = """
CREATE OR REPLACE FUNCTION stepflow_has_tag(tags TEXT, tag TEXT) RETURNS BOOLEAN
LANGUAGE plpgsql IMMUTABLE PARALLEL UNSAFE AS $$
BEGIN
    IF tags IS NULL OR left(ltrim(tags), 1) <> '[' THEN
        RETURN FALSE;
    END IF;
    IF position(tag IN tags) = 0 AND position(E'\\\\' IN tags) = 0 THEN
        RETURN FALSE;
    END IF;
    BEGIN
        RETURN EXISTS (SELECT 1 FROM jsonb_array_elements(tags::jsonb) AS e(v)
                       WHERE jsonb_typeof(e.v) = 'string' AND e.v #>> '{}' = tag);
    EXCEPTION WHEN others THEN
        RETURN FALSE;
    END;
END $$;
"""

# Output is TOASTed once a block passes ~2 KB; the default pglz compresses at a fraction of the
# speed lines arrive (a run's writer fell to ~110,000 lines/s). lz4 keeps pace (> 1M lines/s)
# and still shrinks logs; a server built without lz4 keeps pglz.
M003_LOGS_LZ4 = """
DO $$ BEGIN
    ALTER TABLE logs ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL;
END $$;
"""

# main's Run and Step gained `legacy_status` (what a StepFlow Monitor server wrote): the
# column is here before the field, so the merge needs no new migration.
M004_LEGACY_STATUS = """
ALTER TABLE executions ADD COLUMN IF NOT EXISTS legacy_status TEXT;
ALTER TABLE steps ADD COLUMN IF NOT EXISTS legacy_status TEXT;
"""

# Which spooled batches the store has (stepflow.store.spool): a batch is replayed once.
M005_SPOOLED = """
CREATE TABLE IF NOT EXISTS spooled (
    execution_id TEXT COLLATE "C" NOT NULL, seq INTEGER NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (execution_id, seq));
"""

MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("m001_tables", M001_TABLES),
    ("m002_tag_function", M002_TAG_FUNCTION),
    ("m003_logs_lz4", M003_LOGS_LZ4),
    ("m004_legacy_status", M004_LEGACY_STATUS),
    ("m005_spooled", M005_SPOOLED),
)
CURRENT_VERSION = len(MIGRATIONS)
TABLES = ("executions", "steps", "artifacts", "logs")

CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS stepflow_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
"""


def version(conn: psycopg.Connection) -> int:
    """The highest migration applied (0: a database stepflow never opened). Autocommit `conn`."""
    row = conn.execute(
        "SELECT CASE WHEN to_regclass('stepflow_migrations') IS NULL THEN -1 ELSE 0 END").fetchone()
    if row is None or row[0] < 0:
        return 0
    found = conn.execute("SELECT COALESCE(MAX(version), 0) FROM stepflow_migrations").fetchone()
    return int(found[0]) if found else 0


def apply_migrations(conn: psycopg.Connection, *, where: str) -> list[str]:
    """Bring the schema up to date; the names applied. Quick when nothing is due (one query).

    Raises:
        StoreError: the database was written by a newer stepflow (`where` names it).
        psycopg.Error: the server refused (permissions, timeout): the caller wraps it.
    """
    current = version(conn)
    if current > CURRENT_VERSION:
        raise StoreError(f"store {where}: schema version {current} is newer than this stepflow knows"
                         f" ({CURRENT_VERSION}); upgrade stepflow")
    if current == CURRENT_VERSION:
        return []
    applied: list[str] = []
    with conn.transaction():
        # Everyone opening a new database at once queues here; the first applies, the rest see it done.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute("SET LOCAL statement_timeout = 0")  # a first open on a slow server must finish
        conn.execute(CREATE_MIGRATIONS)
        done = {int(r[0]) for r in conn.execute("SELECT version FROM stepflow_migrations").fetchall()}
        for number, (name, sql) in enumerate(MIGRATIONS, start=1):
            if number in done:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO stepflow_migrations (version, name) VALUES (%s, %s)", (number, name))
            applied.append(name)
    return applied

"""PostgresStore: the `Store` protocol over one psycopg 3 connection, in SQLite's table layout.

One server, many hosts: every row is keyed by the run's id (steps and artifacts by their own
ids, output by (run id, first line)), so a batch retried after a lost connection (committed or
not) never duplicates: rows are inserted ON CONFLICT DO NOTHING, and output blocks go in with
one binary COPY per batch, which refuses a line the store has; such a batch (its COMMIT went
through unanswered) is applied again at once with INSERT ... SELECT FROM unnest(arrays) ON
CONFLICT DO NOTHING. Each batch NOTIFYs in its own transaction, which is what a Watch
(watch.py) LISTENs for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from stepflow.errors import StoreError
from stepflow.record import fields, replace
from stepflow.store.base import (
    ALL_RUNS,
    Artifact,
    Deleted,
    Health,
    LogBlock,
    LogLine,
    NewArtifact,
    NewRun,
    NewStep,
    Run,
    RunChange,
    RunOutcome,
    RunQuery,
    Step,
    StepChange,
    StepDuration,
    Write,
)
from stepflow.store.postgres import schema
from stepflow.store.postgres.connection import (
    CHANNEL,
    READER,
    WRITER,
    Bounds,
    Watchdog,
    connect,
    store_error,
    usable,
)
from stepflow.store.postgres.queries import (
    INSERT_SQL,
    OPEN_SQL,
    SELECT_SQL,
    columns,
    decode,
    encode,
    epoch_of,
    moment_ts,
    runs_clause,
    seconds_between,
    text,
)
from stepflow.store.postgres.watch import PostgresWatch
from stepflow.store.url import DatabaseURL

if TYPE_CHECKING:
    from stepflow.config import Settings

T = TypeVar("T")

CHANGED_TABLES: dict[type, str] = {RunChange: "executions", StepChange: "steps"}
INSERT_BLOCKS = (
    "INSERT INTO logs (execution_id, step_index, stream, first_line, line_count, ts, data, cut)"
    " SELECT * FROM unnest(%b::text[], %b::int[], %b::smallint[], %b::bigint[], %b::int[],"
    " %b::float8[], %b::bytea[], %b::int[])"
    " ON CONFLICT (execution_id, first_line) DO NOTHING"
)

COPY_BLOCKS = ("COPY logs (execution_id, step_index, stream, first_line, line_count, ts, data, cut)"
               " FROM STDIN (FORMAT BINARY)")
BLOCK_TYPES = ["text", "int4", "int2", "int8", "int4", "float8", "bytea", "int4"]
# COPY waits for the server once more than an INSERT (its CopyInResponse): worth it for a big
# batch, a loss for the few lines of a quiet run, 100 of which at once on 2 cores feel each
# round trip.
COPY_MIN = 64 * 1024

__all__ = ["PostgresStore", "open_postgres"]


class PostgresStore:
    """Runs, steps, artifacts and output blocks in one PostgreSQL database."""

    def __init__(self, conn: psycopg.Connection, url: DatabaseURL, bounds: Bounds) -> None:
        self.conn = conn
        self.database = url
        self.url = str(url)  # password masked
        self.bounds = bounds
        self._watchdog = Watchdog(bounds.answer)

    def _conn(self) -> psycopg.Connection:
        """The connection, made again if the server dropped it (a retried batch comes here)."""
        if not usable(self.conn):
            self.conn.close()
            self.conn = connect(self.database, self.bounds)
        return self.conn

    # -- writing ---------------------------------------------------------------------------

    def write(self, writes: Sequence[Write]) -> None:
        """Apply `writes` in order, in one transaction that also NOTIFYs watchers.

        Raises:
            StoreError: not written (unreachable, timed out, refused); nothing of this batch is
                kept, and applying it again later is safe.
        """
        self._retried(self._write, writes)

    def _write(self, writes: Sequence[Write], *, copy: bool) -> bool:
        conn = self._conn()
        with self._watchdog.guard(conn), conn.transaction(), conn.cursor() as cur:
            _apply(cur, writes, copy=copy)
            cur.execute(f"NOTIFY {CHANNEL}")
        return True

    def apply_spooled(self, run_id: str, seq: int, writes: Sequence[Write], *, wait: float = 0.5) -> bool:
        """Apply batch `seq` of run `run_id` from the spool unless the store has it already: the
        batch and its (run id, seq) row share one transaction, whose locks wait at most `wait`
        seconds. True when applied now, False when it was applied before.

        Raises:
            StoreError: not written; nothing of the batch is kept.
        """
        def apply(writes: Sequence[Write], *, copy: bool) -> bool:
            conn = self._conn()
            with self._watchdog.guard(conn), conn.transaction(), conn.cursor() as cur:
                cur.execute(f"SET LOCAL lock_timeout = {max(1, int(wait * 1000))}")
                cur.execute("INSERT INTO spooled (execution_id, seq, applied_at)"
                            " VALUES (%s, %s, extract(epoch FROM clock_timestamp()))"
                            " ON CONFLICT DO NOTHING RETURNING 1", (text(run_id), seq))
                if cur.fetchone() is None:
                    return False
                _apply(cur, writes, copy=copy)
                cur.execute(f"NOTIFY {CHANNEL}")
            return True

        return self._retried(apply, writes)

    def _retried(self, apply: Callable[..., bool], writes: Sequence[Write]) -> bool:
        """`apply(writes, copy=True)`: output by COPY, the fast way, which refuses a line the
        store has. Only a batch whose COMMIT went through unanswered (a lost connection, a cut
        one) comes back with such lines: it is applied again at once, inserting what is missing."""
        try:
            try:
                return apply(writes, copy=True)
            except pg_errors.UniqueViolation:
                return apply(writes, copy=False)
        except psycopg.Error as exc:
            raise store_error(exc, self.database) from exc

    # -- reading ---------------------------------------------------------------------------

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            conn = self._conn()
            with self._watchdog.guard(conn):
                return conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise store_error(exc, self.database) from exc

    def _rows(self, cls: type[T], sql: str, params: Sequence[Any] = ()) -> list[T]:
        cols = columns(cls)
        rows = self._fetch(f"{SELECT_SQL[cls]} {sql}", params)
        return [cls(**{c: decode(c, v) for c, v in zip(cols, row, strict=True)}) for row in rows]

    def find_runs(self, query: RunQuery = ALL_RUNS) -> list[Run]:
        """Runs matching `query`, newest first. Read-only."""
        return self._rows(Run, *runs_clause(query))

    def get_run(self, run_id: str) -> Run | None:
        rows = self._rows(Run, "WHERE id = %s", (text(run_id),))
        return rows[0] if rows else None

    def runs_with_prefix(self, prefix: str, *, limit: int) -> list[Run]:
        """Runs whose id starts with `prefix` (ids are lower-case), by id, at most `limit`. Read-only."""
        prefix = text(prefix.lower())
        if not prefix:
            return []
        last = ord(prefix[-1])
        upper = prefix[:-1] + chr(last + 1) if last < 0x10FFFF else prefix
        return self._rows(Run, "WHERE id >= %s AND id < %s ORDER BY id LIMIT %s", (prefix, upper, limit))

    def steps(self, run_id: str) -> list[Step]:
        return self._rows(Step, "WHERE execution_id = %s ORDER BY step_index, seq", (text(run_id),))

    def artifacts(self, run_id: str) -> list[Artifact]:
        return self._rows(Artifact, "WHERE execution_id = %s ORDER BY seq", (text(run_id),))

    def log_lines(
        self,
        run_id: str,
        *,
        step_index: int | None = None,
        stream: int | None = None,
        grep: bytes | None = None,
        after_line: int = -1,
    ) -> Iterator[LogLine]:
        """Output lines of a run in the order they were read. Read-only."""
        sql = (
            "SELECT step_index, stream, first_line, line_count, ts, data, cut FROM logs"
            " WHERE execution_id = %s AND first_line + line_count > %s"
        )
        params: list[Any] = [text(run_id), after_line + 1]
        if step_index is not None:
            sql += " AND step_index = %s"
            params.append(step_index)
        if stream is not None:
            sql += " AND stream = %s"
            params.append(stream)
        if grep:
            sql += " AND position(%s::bytea in data) > 0"
            params.append(grep)
        sql += " ORDER BY first_line"
        for step, strm, first, count, ts, data, cut in self._fetch(sql, params):
            lines = bytes(data).split(b"\n") if count > 1 else [bytes(data)]
            for offset, line in enumerate(lines):
                number = first + offset
                if number <= after_line or (grep and grep not in line):
                    continue
                yield LogLine(number, step, strm, ts, line, cut if count == 1 else 0)

    def step_durations(self, name: str, *, runs: int = 20) -> list[StepDuration]:
        """Steps of the latest `runs` completed runs named `name`, newest run first. Read-only.

        A run without steps gives one row whose step fields are None.
        """
        sql = (
            "SELECT e.id, s.step_index, s.name, s.status, s.started_at, s.completed_at"
            " FROM (SELECT id, created_ts, seq FROM executions WHERE name = %s AND status = 'completed'"
            " ORDER BY created_ts DESC NULLS LAST, seq DESC LIMIT %s) AS e"
            " LEFT JOIN steps s ON s.execution_id = e.id"
            " ORDER BY e.created_ts DESC NULLS LAST, e.seq DESC, s.step_index, s.seq"
        )
        rows = self._fetch(sql, (text(name), runs))
        return [StepDuration(str(r[0]), r[1], r[2], r[3], seconds_between(r[4], r[5])) for r in rows]

    def stored_lines(self, run_id: str) -> int:
        """Output lines of a run in the store now (its `line_count` is written when it ends). Read-only."""
        rows = self._fetch("SELECT COALESCE(MAX(first_line + line_count), 0) FROM logs WHERE execution_id = %s",
                           (run_id,))
        return int(rows[0][0])

    def job_counts(self) -> dict[str, int]:
        """How many runs each name has, by name. Read-only."""
        return {str(name): int(n) for name, n in self._fetch("SELECT name, COUNT(*) FROM executions GROUP BY name")}

    def status_counts(self) -> dict[str, int]:
        """How many runs have each status. Read-only."""
        return {str(s): int(n) for s, n in self._fetch("SELECT status, COUNT(*) FROM executions GROUP BY status")}

    def run_outcomes(self, query: RunQuery = ALL_RUNS) -> list[RunOutcome]:
        """Name, status, created_ts, seconds taken and completed_ts of the runs matching `query`,
        newest first (as find_runs), times worked out as SQLite's julianday does. Read-only.
        """
        clause, params = runs_clause(query)
        rows = self._fetch(f"SELECT name, status, created_ts, started_at, completed_at FROM executions {clause}",
                           params)
        return [RunOutcome(str(r[0]), str(r[1]), r[2], seconds_between(r[3], r[4]), moment_ts(r[4])) for r in rows]

    # -- capabilities ----------------------------------------------------------------------

    def mark_abandoned(self, run_ids: Sequence[str], *, message: str, wait: float = 0.25) -> int:
        """Set status `abandoned` on those of `run_ids` still running or pending; how many changed.

        Waits at most `wait` seconds for row locks, so a history command stays quick.

        Raises:
            StoreError: not written (read-only role, locked, unreachable); nothing changed.
        """
        if not run_ids:
            return 0
        try:
            conn = self._conn()
            with self._watchdog.guard(conn), conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{max(1, int(wait * 1000))}ms",))
                cur.execute(
                    "UPDATE executions SET status = 'abandoned', error_message = COALESCE(error_message, %s)"
                    f" WHERE id = ANY(%s) AND status IN {OPEN_SQL}",
                    (text(message), [text(i) for i in run_ids]),
                )
                changed = cur.rowcount
                if changed:
                    cur.execute(f"NOTIFY {CHANNEL}")
            return changed
        except psycopg.Error as exc:
            raise store_error(exc, self.database) from exc

    def watch(self) -> PostgresWatch:
        """A Watch over this database: LISTEN on a connection of its own."""
        database = self.database
        return PostgresWatch(lambda: connect(database, READER, application="stepflow-watch"))

    def delete_runs(
        self, *, before_ts: float, status: str | None = None, dry_run: bool = False, batch: int = 500
    ) -> Iterator[Deleted]:
        """Delete finished runs created before `before_ts` (only `status` ones if given), with
        their steps, artifacts rows and output, in batches of `batch` runs, each its own
        transaction, yielded once committed. Never a run still running or pending. `dry_run`:
        count, change nothing. Space goes back to the server on the next (auto)VACUUM, so
        `freed_bytes` stays 0.
        """
        where = f"created_ts < %s AND status NOT IN {OPEN_SQL}"
        params: list[Any] = [before_ts]
        if status:
            where += " AND status = %s"
            params.append(text(status))
        ids = [str(r[0]) for r in self._fetch(f"SELECT id FROM executions WHERE {where} ORDER BY created_ts",
                                             params)]
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            try:
                conn = self._conn()
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute("SET LOCAL statement_timeout = 0")
                    done = _count(cur, chunk)
                    if dry_run:
                        done.runs = len(chunk)
                    else:
                        for table in ("logs", "artifacts", "steps"):
                            cur.execute(f"DELETE FROM {table} WHERE execution_id = ANY(%s)", (chunk,))
                        cur.execute(f"DELETE FROM executions WHERE id = ANY(%s) AND status NOT IN {OPEN_SQL}",
                                    (chunk,))
                        done.runs = cur.rowcount
                        cur.execute(f"NOTIFY {CHANNEL}")
            except psycopg.Error as exc:
                raise store_error(exc, self.database) from exc
            yield done

    def health(self, *, integrity: bool = True) -> Health:
        """Server version, schema version, database size, connections; with `integrity`, that
        every table, index and function the schema makes is there. Read-only."""
        found = Health()
        row = self._fetch(
            "SELECT current_setting('server_version'), current_database(), pg_database_size(current_database()),"
            " current_setting('server_encoding'), pg_is_in_recovery(),"
            " (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())")[0]
        try:
            migrations = schema.version(self._conn())
        except psycopg.Error as exc:
            raise store_error(exc, self.database) from exc
        found.checks.update(backend="postgresql", url=self.url, server_version=row[0], database=row[1],
                            database_bytes=int(row[2]), encoding=row[3], read_only_replica=bool(row[4]),
                            connections=int(row[5]), schema_version=migrations)
        if migrations < schema.CURRENT_VERSION:
            found.problems.append(f"schema version {migrations}, this stepflow writes {schema.CURRENT_VERSION}")
        if row[3] != "UTF8":
            found.problems.append(f"database encoding is {row[3]}, not UTF8: some names cannot be stored")
        if row[4]:
            found.problems.append("this server is a read-only replica: runs cannot be recorded here")
        if integrity:
            missing = self._missing_objects()
            found.checks["integrity"] = "ok" if not missing else [f"missing {m}" for m in missing]
            if missing:
                found.problems.append(f"integrity: missing {', '.join(missing)}")
        return found

    def _missing_objects(self) -> list[str]:
        wanted = [*schema.TABLES, "stepflow_migrations", "idx_executions_created_ts", "idx_executions_name",
                  "idx_executions_status_created", "idx_steps_execution_id", "idx_artifacts_execution_id",
                  "logs_execution_first_line"]
        present = {r[0] for r in self._fetch("SELECT relname FROM pg_class WHERE relname = ANY(%s)"
                                             " AND pg_table_is_visible(oid)", (wanted,))}
        missing = [name for name in wanted if name not in present]
        if not self._fetch("SELECT 1 FROM pg_proc WHERE proname = 'stepflow_has_tag'"):
            missing.append("stepflow_has_tag()")
        return missing

    def counts(self) -> dict[str, int]:
        """Rows in each table (exact counts: `db stats`). Read-only."""
        sql = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM {t}" for t in schema.TABLES)
        counts = {str(name): int(n) for name, n in self._fetch(sql)}
        lines = self._fetch("SELECT COALESCE(SUM(line_count), 0) FROM logs")[0][0]
        counts["log_lines"] = int(lines)
        return counts

    def optimize(self) -> dict[str, Any]:
        """VACUUM (ANALYZE) each table: fresh planner statistics, dead rows' space reusable."""
        try:
            conn = self._conn()
            conn.execute("SET statement_timeout = 0")
            try:
                for table in schema.TABLES:
                    conn.execute(f"VACUUM (ANALYZE) {table}")
            finally:
                conn.execute("SELECT set_config('statement_timeout', %s, false)",
                             (f"{int(self.bounds.statement * 1000)}ms",))
            size = self._fetch("SELECT pg_database_size(current_database())")[0][0]
        except psycopg.Error as exc:
            raise store_error(exc, self.database) from exc
        return {"vacuumed": list(schema.TABLES), "database_bytes": int(size)}

    def close(self) -> None:
        self._watchdog.close()
        self.conn.close()


def _insert(cur: psycopg.Cursor, row: Run | Step | Artifact) -> None:
    if isinstance(row, Run) and row.created_ts is None:  # SQLite's trigger does this (schema m006)
        row = replace(row, created_ts=epoch_of(row.created_at))
    cur.execute(INSERT_SQL[type(row)], [encode(f.name, getattr(row, f.name)) for f in fields(row)])


def _update(cur: psycopg.Cursor, table: str, row_id: str, values: dict[str, Any]) -> None:
    if not values:
        return
    sets = ", ".join(f"{c} = %s" for c in values)
    cur.execute(f"UPDATE {table} SET {sets} WHERE id = %s", [*(encode(c, v) for c, v in values.items()), row_id])


def _apply(cur: Any, writes: Sequence[Write], *, copy: bool = False) -> None:
    """The writes in order on `cur`, consecutive log blocks in one COPY (`copy`) or one insert
    that skips lines the store has."""
    def add_blocks(cur: Any, blocks: list[LogBlock]) -> None:
        if copy and sum(len(b.data) for b in blocks) >= COPY_MIN:
            _copy_blocks(cur, blocks)
        else:
            _insert_blocks(cur, blocks)

    blocks: list[LogBlock] = []
    for w in writes:
        if isinstance(w, LogBlock):
            blocks.append(w)
            continue
        if blocks:
            add_blocks(cur, blocks)
            blocks = []
        if isinstance(w, RunChange | StepChange):
            _update(cur, CHANGED_TABLES[type(w)], w.id, w.changes())
        elif isinstance(w, NewRun):
            _insert(cur, w.run)
        elif isinstance(w, NewStep):
            _insert(cur, w.step)
        elif isinstance(w, NewArtifact):
            _insert(cur, w.artifact)
        else:
            raise TypeError(f"not a store write: {type(w).__name__}")
    if blocks:
        add_blocks(cur, blocks)


def _copy_blocks(cur: psycopg.Cursor, blocks: list[LogBlock]) -> None:
    """All blocks of a batch in one binary COPY: no arrays built by the client and taken apart
    by the server, half the client's CPU of the insert (1,000,000 lines: 0.24 s against 0.29-0.43 s).
    Raises psycopg.errors.UniqueViolation when the store has one of the lines."""
    with cur.copy(COPY_BLOCKS) as copy:
        copy.set_types(BLOCK_TYPES)
        for b in blocks:
            copy.write_row((text(b.execution_id), b.step_index, b.stream, b.first_line, b.line_count, b.ts,
                            b.data, b.cut))


def _insert_blocks(cur: psycopg.Cursor, blocks: list[LogBlock]) -> None:
    """All blocks of a batch in one statement: a column array each, unnested by the server.

    The arrays go in binary (%b): as text, bytea is hex-escaped and parsed back, 3x slower."""
    cur.execute(INSERT_BLOCKS, (
        [text(b.execution_id) for b in blocks], [b.step_index for b in blocks], [b.stream for b in blocks],
        [b.first_line for b in blocks], [b.line_count for b in blocks], [b.ts for b in blocks],
        [b.data for b in blocks], [b.cut for b in blocks],
    ))


def _count(cur: psycopg.Cursor, ids: list[str]) -> Deleted:
    done = Deleted(ids)
    cur.execute(
        "SELECT (SELECT COUNT(*) FROM steps WHERE execution_id = ANY(%s)),"
        " (SELECT COUNT(*) FROM artifacts WHERE execution_id = ANY(%s)),"
        " (SELECT COALESCE(SUM(line_count), 0) FROM logs WHERE execution_id = ANY(%s))", (ids, ids, ids))
    row = cur.fetchone()
    if row is not None:
        done.steps, done.artifacts, done.log_lines = int(row[0]), int(row[1]), int(row[2])
    return done


def open_postgres(
    url: DatabaseURL, settings: Settings, *, appending: bool = False, readonly: bool = False
) -> PostgresStore:
    """Open the PostgreSQL store at `url`, creating or bringing its schema up to date.

    `appending`: the connection of a run's writer, with the short WRITER bounds
    (stepflow.store.postgres.connection) so an unreachable or slow server fails fast.
    `readonly`: change nothing, not even the schema; the session's transactions are read-only
    (ETA hints, health); a database stepflow never wrote to is an error, not a new store.

    Raises:
        StoreError: cannot connect, refused, timed out, written by a newer stepflow, or
            (`readonly`) holding no stepflow store.
    """
    bounds = WRITER if appending else READER
    conn = connect(url, bounds, application="stepflow-run" if appending else "stepflow")
    try:
        if readonly:
            _check_readable(conn, url)
        else:
            schema.apply_migrations(conn, where=str(url))
    except psycopg.Error as exc:
        conn.close()
        raise store_error(exc, url) from exc
    except StoreError:
        conn.close()
        raise
    return PostgresStore(conn, url, bounds)


def _check_readable(conn: psycopg.Connection, url: DatabaseURL) -> None:
    """For a read-only open: the schema is there and not newer; later transactions cannot write."""
    found = schema.version(conn)
    if found == 0:
        raise StoreError(f"no store at {url}; record a run with \"stepflow run -- CMD\"")
    if found > schema.CURRENT_VERSION:
        raise StoreError(f"store {url}: schema version {found} is newer than this stepflow knows"
                         f" ({schema.CURRENT_VERSION}); upgrade stepflow")
    conn.execute("SET default_transaction_read_only = on")

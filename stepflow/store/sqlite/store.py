"""SqliteStore: the `Store` protocol over one APSW connection, in the legacy table layout.

Runs are rows of `executions`, steps of `steps`, artifacts of `artifacts` (StepFlow Monitor's
names, kept so a migrated store and a new one are the same); output is blocks of lines in
`logs` (schema m003). JSON-valued fields are stored as JSON text.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import apsw

from stepflow import jsontext
from stepflow.errors import StoreError
from stepflow.record import fields
from stepflow.store import schema, zone
from stepflow.store.base import (
    ALL_RUNS,
    JSON_FIELDS,
    OPEN_STATUSES,
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
    decode_json,
)
from stepflow.store.connection import (
    connect,
    immediate,
    maintenance_pause,
    scalar,
    store_error,
    wait_for_lock,
    wal_path,
)
from stepflow.store.url import DatabaseURL

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, TypeVar

    from stepflow.config import Settings
    from stepflow.store.sqlite.watch import SqliteWatch

if TYPE_CHECKING:
    T = TypeVar("T")

JSON_COLUMNS = JSON_FIELDS
TABLES: dict[type, str] = {Run: "executions", Step: "steps", Artifact: "artifacts"}
CHANGED_TABLES: dict[type, str] = {RunChange: "executions", StepChange: "steps"}
COUNTED_TABLES = ("executions", "steps", "artifacts", "logs")
OPEN_SQL = "(" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")"  # ('running', 'pending')

__all__ = ["SqliteStore", "open_sqlite", "wal_path", "runs_clause", "encode", "decode"]


def encode(column: str, value: Any) -> Any:
    """A Python value as stored; JSON columns hold JSON text (non-ASCII kept readable)."""
    if column in JSON_COLUMNS and value is not None and not isinstance(value, str):
        return jsontext.dumps(value)
    return value


decode = decode_json  # the protocol's rule: a JSON field's text decoded, bad JSON kept as text


def _columns(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


_INSERT_SQL = {
    cls: f"INSERT INTO {table} ({', '.join(_columns(cls))}) VALUES ({', '.join('?' * len(_columns(cls)))})"
    for cls, table in TABLES.items()
}


def _text(value: str) -> str:
    """A parameter typed by a user, as text SQLite can take (stray bytes become U+FFFD)."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def runs_clause(query: RunQuery) -> tuple[str, list[Any]]:
    """The WHERE/ORDER BY/LIMIT of `find_runs`, with its parameters (tests check its plan)."""
    where, params = [], []  # type: tuple[list[str], list[Any]]
    if query.status:
        where.append("status = ?")
        params.append(query.status)
    if query.name_glob:
        # A glob with no wildcard is a name: the (name, created_ts) index gives it in order.
        # With a wildcard, walking runs newest first and testing each is cheaper than
        # sorting all matches of a common prefix (unary + keeps the name index out).
        where.append("+name GLOB ?" if any(c in query.name_glob for c in "*?[") else "name = ?")
        params.append(_text(query.name_glob))
    if query.tag:
        # CASE keeps json_each away from legacy rows whose tags are not valid JSON.
        where.append(
            "CASE WHEN json_valid(tags) THEN EXISTS (SELECT 1 FROM json_each(tags)"
            " WHERE value = ?) ELSE 0 END"
        )
        params.append(_text(query.tag))
    if query.since_ts is not None:
        where.append("created_ts >= ?")
        params.append(query.since_ts)
    if query.host:
        where.append("host = ?")
        params.append(_text(query.host))
    sql = ("WHERE " + " AND ".join(where)) if where else ""
    sql += " ORDER BY created_ts DESC, rowid DESC"
    if query.limit is not None or query.offset:
        sql += " LIMIT ?"
        params.append(-1 if query.limit is None else query.limit)
    if query.offset:
        sql += " OFFSET ?"
        params.append(query.offset)
    return sql, params


class SqliteStore:
    """Runs, steps, artifacts and log blocks in one SQLite database in WAL mode."""

    def __init__(self, conn: apsw.Connection, path: str | Path, *, settings: Settings | None = None,
                 busy_ms: int = 30000) -> None:
        self.conn = conn
        self.file = os.fspath(path)
        self.url = self.file
        self.settings = settings
        self.busy_ms = busy_ms  # the connection's busy timeout, restored after a shorter wait

    @property
    def path(self) -> Path:
        from pathlib import Path

        return Path(self.file)

    # -- writing ---------------------------------------------------------------------------

    def write(self, writes: Sequence[Write]) -> None:
        """Apply `writes` in order, in one IMMEDIATE transaction.

        Raises:
            StoreError: the database could not be written (locked, full, read-only); nothing
                of this batch is kept.
        """
        try:
            with immediate(self.conn):
                self._apply(writes)
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc

    def apply_spooled(self, run_id: str, seq: int, writes: Sequence[Write], *, wait: float = 0.5) -> bool:
        """Apply batch `seq` of run `run_id` from the spool unless the store has it already.

        The batch and its (run id, seq) row share one IMMEDIATE transaction, which waits at
        most `wait` seconds for the write lock: replaying twice changes nothing. True when
        applied now, False when it was applied before.

        Raises:
            StoreError: not written (locked, full, read-only); nothing of the batch is kept.
        """
        try:
            wait_for_lock(self.conn, int(wait * 1000))
            with immediate(self.conn):
                if scalar(self.conn, "SELECT 1 FROM spooled WHERE execution_id = ? AND seq = ?", (run_id, seq)):
                    return False
                self._apply(writes)
                self.conn.execute("INSERT INTO spooled (execution_id, seq, applied_at) VALUES (?, ?,"
                                  " unixepoch('subsec'))", (run_id, seq))
            return True
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        finally:
            wait_for_lock(self.conn, self.busy_ms)

    def _apply(self, writes: Sequence[Write]) -> None:
        blocks: list[LogBlock] = []
        for w in writes:
            if isinstance(w, LogBlock):
                blocks.append(w)
                continue
            if blocks:
                self._insert_blocks(blocks)
                blocks = []
            if isinstance(w, RunChange | StepChange):
                self._update(CHANGED_TABLES[type(w)], w.id, w.changes())
            elif isinstance(w, NewRun):
                self._insert(w.run)
            elif isinstance(w, NewStep):
                self._insert(w.step)
            elif isinstance(w, NewArtifact):
                self._insert(w.artifact)
            else:
                raise TypeError(f"not a store write: {type(w).__name__}")
        if blocks:
            self._insert_blocks(blocks)

    def _insert(self, row: Run | Step | Artifact) -> None:
        values = [encode(f.name, getattr(row, f.name)) for f in fields(row)]
        self.conn.execute(_INSERT_SQL[type(row)], values)

    def _update(self, table: str, row_id: str, values: dict[str, Any]) -> None:
        if not values:
            return
        sets = ", ".join(f"{c} = ?" for c in values)
        params = [encode(c, v) for c, v in values.items()]
        self.conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*params, row_id])

    def _insert_blocks(self, blocks: list[LogBlock]) -> None:
        self.conn.executemany(
            "INSERT INTO logs (execution_id, step_index, stream, first_line, line_count, ts, data,"
            " cut) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (b.execution_id, b.step_index, b.stream, b.first_line, b.line_count, b.ts, b.data,
                 b.cut)
                for b in blocks
            ],
        )

    # -- reading ---------------------------------------------------------------------------

    def _rows(self, cls: type[T], sql: str, params: Sequence[Any] = ()) -> list[T]:
        cols = _columns(cls)
        query = f"SELECT {', '.join(cols)} FROM {TABLES[cls]} {sql}"
        try:
            rows = self.conn.execute(query, params).fetchall()
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        return [cls(**{c: decode(c, v) for c, v in zip(cols, row, strict=True)}) for row in rows]

    def find_runs(self, query: RunQuery = ALL_RUNS) -> list[Run]:
        """Runs matching `query`, newest first. Read-only."""
        return self._rows(Run, *runs_clause(query))

    def get_run(self, run_id: str) -> Run | None:
        rows = self._rows(Run, "WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def runs_with_prefix(self, prefix: str, *, limit: int) -> list[Run]:
        """Runs whose id starts with `prefix` (ids are lower-case), by id, at most `limit`. Read-only."""
        prefix = prefix.lower()
        if not prefix:
            return []
        # Every id starting with the prefix sorts below the prefix with its last character
        # raised by one (at U+10FFFF there is no such character, and no id starts so).
        last = ord(prefix[-1])
        upper = prefix[:-1] + chr(last + 1) if last < 0x10FFFF else prefix
        return self._rows(Run, "WHERE id >= ? AND id < ? ORDER BY id LIMIT ?", (prefix, upper, limit))

    def steps(self, run_id: str) -> list[Step]:
        return self._rows(Step, "WHERE execution_id = ? ORDER BY step_index, rowid", (run_id,))

    def artifacts(self, run_id: str) -> list[Artifact]:
        return self._rows(Artifact, "WHERE execution_id = ? ORDER BY rowid", (run_id,))

    def stored_lines(self, run_id: str) -> int:
        """Output lines of a run in the store now (a run's `line_count` is written when it
        ends: 0 while it runs, and for good when its stepflow was killed). Read-only."""
        try:
            rows: list[Any] = self.conn.execute(
                "SELECT COALESCE(MAX(first_line + line_count), 0) FROM logs WHERE execution_id = ?",
                (run_id,)).fetchall()
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        return int(rows[0][0])

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
            " WHERE execution_id = ? AND first_line + line_count > ?"
        )
        params: list[Any] = [run_id, after_line + 1]
        if step_index is not None:
            sql += " AND step_index = ?"
            params.append(step_index)
        if stream is not None:
            sql += " AND stream = ?"
            params.append(stream)
        if grep:
            sql += " AND instr(data, ?) > 0"
            params.append(grep)
        sql += " ORDER BY first_line"
        try:
            blocks: list[Any] = self.conn.execute(sql, params).fetchall()
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        for step, strm, first, count, ts, data, cut in blocks:
            lines = bytes(data).split(b"\n") if count > 1 else [bytes(data)]
            for offset, text in enumerate(lines):
                number = first + offset
                if number <= after_line or (grep and grep not in text):
                    continue
                yield LogLine(number, step, strm, ts, text, cut if count == 1 else 0)

    def step_durations(self, name: str, *, runs: int = 20) -> list[StepDuration]:
        """Steps of the latest `runs` completed runs named `name`, newest run first. Read-only.

        A run without steps gives one row whose step fields are None. One query, on the
        (name, created_ts) index: what the live view needs for its ETAs.
        """
        sql = (
            "SELECT e.id, s.step_index, s.name, s.status,"
            " (julianday(s.completed_at) - julianday(s.started_at)) * 86400.0"
            " FROM (SELECT id, created_ts, rowid AS r FROM executions WHERE name = ? AND status = 'completed'"
            " ORDER BY created_ts DESC, rowid DESC LIMIT ?) AS e"
            " LEFT JOIN steps s ON s.execution_id = e.id"
            " ORDER BY e.created_ts DESC, e.r DESC, s.step_index"
        )
        try:
            rows = self.conn.execute(sql, (name, runs)).fetchall()
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        return [StepDuration(str(r[0]), r[1], r[2], r[3], r[4]) for r in rows]  # type: ignore[arg-type]

    def job_counts(self) -> dict[str, int]:
        """How many runs each name has, by name. Read-only; one walk of the (name, created_ts) index."""
        try:
            rows = self.conn.execute("SELECT name, COUNT(*) FROM executions GROUP BY name").fetchall()
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        return {str(name): int(count) for name, count in rows}  # type: ignore[arg-type]

    def status_counts(self) -> dict[str, int]:
        """How many runs have each status. Read-only; one walk of the status index."""
        try:
            rows = self.conn.execute("SELECT status, COUNT(*) FROM executions GROUP BY status").fetchall()
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        return {str(status): int(count) for status, count in rows}  # type: ignore[arg-type]

    def run_outcomes(self, query: RunQuery = ALL_RUNS) -> list[RunOutcome]:
        """Name, status and times of the runs matching `query`, newest first (as find_runs). Read-only.

        Five columns per run, times as numbers computed by SQLite: a store of 100,000 runs in
        about 0.2 s, several times less than find_runs building whole rows (statistics, /metrics).
        """
        clause, params = runs_clause(query)
        sql = ("SELECT name, status, created_ts, (julianday(completed_at) - julianday(started_at)) * 86400.0,"
               f" (julianday(completed_at) - 2440587.5) * 86400.0 FROM executions {clause}")
        try:
            rows = self.conn.execute(sql, params).fetchall()
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        return [RunOutcome._make(row) for row in rows]
    def counts(self) -> dict[str, int]:
        """Rows in each table, and the output lines they hold (exact counts: `db stats`). Read-only."""
        try:
            found = {t: int(scalar(self.conn, f"SELECT COUNT(*) FROM {t}")) for t in COUNTED_TABLES}
            found["log_lines"] = int(scalar(self.conn, "SELECT COALESCE(SUM(line_count), 0) FROM logs"))
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        return found

    # -- capabilities ----------------------------------------------------------------------

    def mark_abandoned(self, run_ids: Sequence[str], *, message: str, wait: float = 0.25) -> int:
        """Set status `abandoned` on those of `run_ids` still running or pending; how many changed.

        One short IMMEDIATE transaction that waits at most `wait` seconds for the write lock,
        so a history command stays quick; the status test in the UPDATE leaves a run alone
        that finished meanwhile.

        Raises:
            StoreError: not written (read-only, locked); nothing changed.
        """
        changed = 0
        try:
            wait_for_lock(self.conn, int(wait * 1000))
            with immediate(self.conn):
                for start in range(0, len(run_ids), 500):  # a legacy store may hold thousands
                    chunk = list(run_ids[start:start + 500])
                    self.conn.execute(
                        "UPDATE executions SET status = 'abandoned', error_message = COALESCE(error_message, ?)"
                        f" WHERE id IN ({', '.join('?' * len(chunk))}) AND status IN {OPEN_SQL}",
                        [message, *chunk],
                    )
                    changed += self.conn.changes()
            return changed
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        finally:
            wait_for_lock(self.conn, self.busy_ms)

    def watch(self) -> SqliteWatch:
        """A Watch over this database: PRAGMA data_version on a connection of its own."""
        from stepflow.store.sqlite.watch import SqliteWatch  # only followers need it, never a run

        settings = self.settings
        path = self.path
        return SqliteWatch(lambda: _watch_connection(path, settings))

    def delete_runs(
        self, *, before_ts: float, status: str | None = None, dry_run: bool = False, batch: int = 500
    ) -> Iterator[Deleted]:
        """Delete finished runs created before `before_ts` (only `status` ones if given), with
        their steps, artifacts rows and output, in batches of `batch` runs.

        Each batch is one short IMMEDIATE transaction (runs recording meanwhile wait for
        milliseconds) and is yielded once committed, so files can go after their rows. Runs
        still running or pending are never deleted. `dry_run`: count, change nothing.
        """
        where = f"created_ts < ? AND status NOT IN {OPEN_SQL}"
        params: list[Any] = [before_ts]
        if status:
            where += " AND status = ?"
            params.append(status)
        try:
            ids = [str(r[0]) for r in self.conn.execute(
                f"SELECT id FROM executions WHERE {where} ORDER BY created_ts", params).fetchall()]
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            try:
                done = self._count(chunk)
                if dry_run:
                    done.runs = len(chunk)
                else:
                    free_before = int(scalar(self.conn, "PRAGMA freelist_count"))
                    self._delete(chunk, done)
                    freed = int(scalar(self.conn, "PRAGMA freelist_count")) - free_before
                    done.freed_bytes = max(0, freed) * int(scalar(self.conn, "PRAGMA page_size"))
            except apsw.Error as exc:
                raise store_error(exc, self.file) from exc
            yield done

    def _count(self, ids: list[str]) -> Deleted:
        marks = ", ".join("?" * len(ids))
        done = Deleted(ids)
        done.steps = int(scalar(self.conn, f"SELECT COUNT(*) FROM steps WHERE execution_id IN ({marks})", tuple(ids)))
        done.artifacts = int(scalar(self.conn, f"SELECT COUNT(*) FROM artifacts WHERE execution_id IN ({marks})",
                                    tuple(ids)))
        done.log_lines = int(scalar(self.conn, "SELECT COALESCE(SUM(line_count), 0) FROM logs WHERE execution_id IN"
                                               f" ({marks})", tuple(ids)))
        return done

    def _delete(self, ids: list[str], done: Deleted) -> None:
        marks = ", ".join("?" * len(ids))
        with immediate(self.conn):
            for table in ("logs", "artifacts", "steps", "spooled"):
                self.conn.execute(f"DELETE FROM {table} WHERE execution_id IN ({marks})", tuple(ids))
            self.conn.execute(f"DELETE FROM executions WHERE id IN ({marks}) AND status NOT IN {OPEN_SQL}",
                              tuple(ids))
            done.runs = self.conn.changes()

    def health(self, *, integrity: bool = True) -> Health:
        """Journal mode, schema version, WAL size and (with `integrity`) quick_check. Read-only."""
        found = Health()
        try:
            mode = str(scalar(self.conn, "PRAGMA journal_mode"))
            if mode != "wal" and _file_says_wal(self.path):
                mode = "wal"  # opened immutable (no WAL index could be made here): the file is WAL
            found.checks.update(backend="sqlite", schema_version=schema.user_version(self.conn), journal_mode=mode)
            if mode != "wal":
                found.problems.append(f"journal mode is {mode}, not WAL: run \"stepflow migrate --to-wal\"")
            wal = wal_path(self.path)
            found.checks["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
            if integrity:
                problems = [" ".join(str(r[0]).split()) for r in self.conn.execute("PRAGMA quick_check(5)").fetchall()]
                found.checks["integrity"] = "ok" if problems == ["ok"] else problems
                if problems != ["ok"]:
                    found.problems.append(f"integrity: {problems[0]}; see \"stepflow db check\"")
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        return found

    def optimize(self) -> dict[str, Any]:
        """ANALYZE (fresh statistics for the query planner), PRAGMA optimize, a PASSIVE checkpoint."""
        try:
            self.conn.execute("ANALYZE")
            self.conn.execute("PRAGMA optimize").fetchall()
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except apsw.Error as exc:
            raise store_error(exc, self.file) from exc
        wal = wal_path(self.path)
        return {"wal_after": wal.stat().st_size if wal.exists() else 0}

    def close(self) -> None:
        self.conn.close()


def _file_says_wal(db: Path) -> bool:
    """The database header's read/write versions (bytes 18-19) are 2 in WAL mode."""
    try:
        with open(db, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    return len(head) == 20 and head[18] == 2 and head[19] == 2


def _watch_connection(path: Path, settings: Settings | None) -> apsw.Connection:
    if settings is None:
        return apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    return connect(path, settings, readonly=True)


def open_sqlite(
    url: DatabaseURL, settings: Settings, *, appending: bool = False, readonly: bool = False
) -> SqliteStore:
    """Open (creating if needed) the SQLite store at `url`, bringing its schema up to date.

    `appending`: for a run's writer (see connection.connect). `readonly`: an existing file,
    opened read-only and left as it is (no migration; a missing file is an error).

    Raises:
        StoreError: unreadable, written by a newer stepflow, or a StepFlow Monitor store that
            must first go through `stepflow migrate --to-wal`.
    """
    db = url.file if url.file is not None else settings.database_file  # str: no pathlib at a run's start-up
    # `stepflow migrate` and `rollback` hold a lock while the store changes under them: wait.
    with maintenance_pause(db, timeout=settings.busy_timeout_ms / 1000):
        conn = connect(db, settings, appending=appending, readonly=readonly)
        try:
            if schema.is_legacy(conn):
                raise StoreError(
                    f"{db} is a StepFlow Monitor store; run \"stepflow migrate --to-wal\" to bring it across"
                )
            version = schema.user_version(conn)
            if version > schema.CURRENT_VERSION:
                raise StoreError(
                    f"{db} has schema version {version}, newer than this stepflow knows"
                    f" ({schema.CURRENT_VERSION}); upgrade stepflow"
                )
            if not readonly:
                schema.apply_migrations(conn)
            zone.set_legacy_zone(schema.meta(conn, zone.LEGACY_TZ_KEY))
            zone.set_storage(os.path.dirname(os.path.dirname(os.path.abspath(db))))  # <storage>/database/stepflow.db
        except apsw.Error as exc:
            conn.close()
            raise store_error(exc, db) from exc
        except StoreError:
            conn.close()
            raise
    return SqliteStore(conn, db, settings=settings, busy_ms=settings.busy_timeout_ms)

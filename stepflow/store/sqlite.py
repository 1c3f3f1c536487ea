"""The SQLite store: stepflow's writes and reads over one APSW connection."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import apsw

from stepflow.config import Settings
from stepflow.errors import NotFoundError, StoreError, UsageError
from stepflow.store import schema, zone
from stepflow.store.connection import connect, immediate, maintenance_pause, scalar, store_error
from stepflow.store.models import Artifact, Insert, LogBlock, LogLine, Run, Step, Update, Write

T = TypeVar("T")

JSON_COLUMNS = frozenset({"environment", "tags", "metadata", "warnings"})
TABLES = {"executions": Run, "steps": Step, "artifacts": Artifact}
MIN_PREFIX = 4


@dataclass(frozen=True, slots=True)
class StepDuration:
    """One step of an earlier completed run, as `step_durations` returns it (ETA hints)."""

    run_id: str
    step_index: int | None
    name: str | None
    status: str | None
    seconds: float | None


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which runs `find_runs` returns, newest first."""

    status: str | None = None
    name_glob: str | None = None
    tag: str | None = None
    since_ts: float | None = None
    limit: int | None = None


def encode(column: str, value: Any) -> Any:
    """A Python value as stored; JSON columns hold JSON text (non-ASCII kept readable)."""
    if column in JSON_COLUMNS and value is not None and not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return value


def decode(column: str, value: Any) -> Any:
    """A stored value as Python; JSON that does not parse is returned as the text it is."""
    if column in JSON_COLUMNS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _columns(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


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
    sql = ("WHERE " + " AND ".join(where)) if where else ""
    sql += " ORDER BY created_ts DESC, rowid DESC"
    if query.limit is not None:
        sql += " LIMIT ?"
        params.append(query.limit)
    return sql, params


class SqliteStore:
    """Runs, steps, artifacts and log blocks in one SQLite database in WAL mode."""

    def __init__(self, conn: apsw.Connection, path: Path, *, busy_ms: int = 30000) -> None:
        self.conn = conn
        self.path = path
        self.busy_ms = busy_ms  # the connection's busy timeout, restored after a shorter wait

    # -- writing ---------------------------------------------------------------------------

    def write(self, writes: Sequence[Write]) -> None:
        """Apply `writes` in order, in one IMMEDIATE transaction.

        Raises:
            StoreError: the database could not be written (locked, full, read-only); nothing
                of this batch is kept.
        """
        try:
            with immediate(self.conn):
                blocks: list[LogBlock] = []
                for w in writes:
                    if isinstance(w, LogBlock):
                        blocks.append(w)
                        continue
                    if blocks:
                        self._insert_blocks(blocks)
                        blocks = []
                    if isinstance(w, Insert):
                        self._insert(w)
                    else:
                        self._update(w)
                if blocks:
                    self._insert_blocks(blocks)
        except apsw.Error as exc:
            raise store_error(exc, self.path) from exc

    def _insert(self, w: Insert) -> None:
        cols = list(w.values)
        sql = f"INSERT INTO {w.table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        self.conn.execute(sql, [encode(c, w.values[c]) for c in cols])

    def _update(self, w: Update) -> None:
        if not w.values:
            return
        sets = ", ".join(f"{c} = ?" for c in w.values)
        values = [encode(c, v) for c, v in w.values.items()]
        self.conn.execute(f"UPDATE {w.table} SET {sets} WHERE id = ?", [*values, w.id])

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
        table = next(t for t, c in TABLES.items() if c is cls)
        query = f"SELECT {', '.join(cols)} FROM {table} {sql}"
        try:
            rows = self.conn.execute(query, params).fetchall()
        except apsw.Error as exc:
            raise store_error(exc, self.path) from exc
        return [cls(**{c: decode(c, v) for c, v in zip(cols, row, strict=True)}) for row in rows]

    def find_runs(self, query: RunQuery = RunQuery()) -> list[Run]:
        """Runs matching `query`, newest first. Read-only."""
        return self._rows(Run, *runs_clause(query))

    def get_run(self, run_id: str) -> Run | None:
        rows = self._rows(Run, "WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def resolve(self, ref: str) -> Run:
        """The run named by a full id, a unique prefix of at least 4 characters, or `last`.

        Raises:
            NotFoundError: no run, or several, match.
            UsageError: the prefix is too short to be safe.
        """
        ref = ref.strip().encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if ref.lower() == "last":
            runs = self.find_runs(RunQuery(limit=1))
            if not runs:
                raise NotFoundError(f"no runs recorded yet in {self.path}")
            return runs[0]
        exact = self.get_run(ref)
        if exact is not None:
            return exact
        if len(ref) < MIN_PREFIX:
            raise UsageError(f"run id {ref!r} is too short; give at least {MIN_PREFIX} characters")
        prefix = ref.lower()
        # Every id starting with the prefix sorts below the prefix with its last character
        # raised by one (at U+10FFFF there is no such character, and no id starts so).
        last = ord(prefix[-1])
        upper = prefix[:-1] + chr(last + 1) if last < 0x10FFFF else prefix
        matches = self._rows(Run, "WHERE id >= ? AND id < ? ORDER BY id LIMIT 6", (prefix, upper))
        if not matches:
            raise NotFoundError(f"no run with id {ref!r}; see \"stepflow ls\"")
        if len(matches) > 1:
            shown = ", ".join(m.id[:12] for m in matches[:5])
            more = " and more" if len(matches) > 5 else ""
            raise NotFoundError(f"run id {ref!r} is ambiguous: {shown}{more}; give more characters")
        return matches[0]

    def steps(self, run_id: str) -> list[Step]:
        return self._rows(Step, "WHERE execution_id = ? ORDER BY step_index, rowid", (run_id,))

    def artifacts(self, run_id: str) -> list[Artifact]:
        return self._rows(Artifact, "WHERE execution_id = ? ORDER BY rowid", (run_id,))

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
            raise store_error(exc, self.path) from exc
        for step, strm, first, count, ts, data, cut in blocks:
            lines = bytes(data).split(b"\n") if count > 1 else [bytes(data)]
            for offset, text in enumerate(lines):
                number = first + offset
                if number <= after_line or (grep and grep not in text):
                    continue
                yield LogLine(number, step, strm, ts, text, cut if count == 1 else 0)

    def data_version(self) -> int:
        """Changes when another connection commits; cheap to poll for `logs --follow`."""
        return int(scalar(self.conn, "PRAGMA data_version"))

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
            raise store_error(exc, self.path) from exc
        return [StepDuration(str(r[0]), r[1], r[2], r[3], r[4]) for r in rows]  # type: ignore[arg-type]

    def mark_abandoned(self, run_ids: Sequence[str], *, message: str, busy_ms: int = 250) -> int:
        """Set status `abandoned` on those of `run_ids` still running or pending; how many changed.

        One short IMMEDIATE transaction that waits at most `busy_ms` for the write lock, so a
        history command stays quick; the status test in the UPDATE leaves a run alone that
        finished meanwhile.

        Raises:
            StoreError: not written (read-only, locked); nothing changed.
        """
        changed = 0
        try:
            self.conn.setbusytimeout(busy_ms)
            with immediate(self.conn):
                for start in range(0, len(run_ids), 500):  # a legacy store may hold thousands
                    chunk = list(run_ids[start:start + 500])
                    self.conn.execute(
                        "UPDATE executions SET status = 'abandoned', error_message = COALESCE(error_message, ?)"
                        f" WHERE id IN ({', '.join('?' * len(chunk))}) AND status IN ('running', 'pending')",
                        [message, *chunk],
                    )
                    changed += self.conn.changes()
            return changed
        except apsw.Error as exc:
            raise store_error(exc, self.path) from exc
        finally:
            self.conn.setbusytimeout(self.busy_ms)

    def close(self) -> None:
        self.conn.close()


def open_store(settings: Settings, *, path: Path | None = None, appending: bool = False) -> SqliteStore:
    """Open (creating if needed) the store, bringing a stepflow schema up to date.

    `appending`: for a run's writer (see connection.connect).

    Raises:
        StoreError: unreadable, written by a newer stepflow, or a StepFlow Monitor store that
            must first go through `stepflow migrate --to-wal`.
    """
    db = path or settings.database
    # `stepflow migrate` and `rollback` hold a lock while the store changes under them: wait.
    with maintenance_pause(db, timeout=settings.busy_timeout_ms / 1000):
        conn = connect(db, settings, appending=appending)
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
            schema.apply_migrations(conn)
            zone.set_legacy_zone(schema.meta(conn, zone.LEGACY_TZ_KEY))
            zone.set_storage(db.parent.parent)  # <storage>/database/stepflow.db
        except apsw.Error as exc:
            conn.close()
            raise store_error(exc, db) from exc
        except StoreError:
            conn.close()
            raise
    return SqliteStore(conn, db, busy_ms=settings.busy_timeout_ms)

"""The two ends of `stepflow db copy`: a store's tables as raw rows, read in snapshots, written in transactions.

Rows move as the backend holds them (JSON as its text, times as their text, created_ts as
its float), never through Run/Step records, so nothing is decoded, re-encoded or dropped on
the way. One class per backend, over the connection its store opened; both read a batch of
runs in one consistent snapshot and write one in one transaction.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from stepflow.errors import StoreError
from stepflow.store.base import Store

# Every table a run owns, in the order they are written, with the column naming the run.
TABLES: tuple[tuple[str, str], ...] = (
    ("executions", "id"), ("steps", "execution_id"), ("artifacts", "execution_id"),
    ("logs", "execution_id"), ("spooled", "execution_id"),
)
# Columns each backend makes up itself and that are no part of a run: SQLite numbers log
# blocks (`logs.id`), PostgreSQL numbers rows in insert order (`seq`, its rowid).
LOCAL_COLUMNS = frozenset({("logs", "id"), ("executions", "seq"), ("steps", "seq"), ("artifacts", "seq")})
# Rows are read in the order the readers show them, so the target inserts them in that order
# too: a run's artifacts (and steps sharing an index) by insert order, `{rowid}` (SQLite's
# rowid, PostgreSQL's seq). By id, `show` listed a copied run's artifacts in another order.
ORDER = {"executions": "id", "steps": "execution_id, step_index, {rowid}", "artifacts": "execution_id, {rowid}",
         "logs": "execution_id, first_line", "spooled": "execution_id, seq"}
# Rows held at once, and output bytes: memory stays bounded whatever the runs' sizes.
ROWS_PER_INSERT = 2000
BYTES_PER_INSERT = 8 << 20

# Per run: steps, artifacts, log blocks, log lines, spooled batches.
Counts = tuple[int, int, int, int, int]
NO_ROWS: Counts = (0, 0, 0, 0, 0)


def batches(rows: Iterator[Sequence[Any]], columns: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
    """`rows` in lists of at most ROWS_PER_INSERT rows, and of about BYTES_PER_INSERT of output."""
    data = columns.index("data") if "data" in columns else -1
    batch: list[tuple[Any, ...]] = []
    size = 0
    for row in rows:
        batch.append(tuple(row))
        if data >= 0:
            size += len(row[data] or b"")
        if len(batch) >= ROWS_PER_INSERT or size >= BYTES_PER_INSERT:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def guarded(method: Any) -> Any:
    """Errors of this end's driver become a StoreError naming this end (`self._error`), so a
    failure at the source is never reported as the target's while both are in use."""
    import functools
    import inspect

    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generate(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                yield from method(self, *args, **kwargs)
            except self.driver_error as exc:
                raise self._error(exc) from exc
        return generate

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except self.driver_error as exc:
            raise self._error(exc) from exc
    return call


class End(Protocol):
    """One end of a copy: where runs are read from or written to."""

    label: str  # the store as a URL, password masked

    def identity(self) -> tuple[Any, ...]: ...
    def columns(self, table: str) -> list[str]: ...
    def reading(self) -> contextlib.AbstractContextManager[None]: ...
    def writing(self) -> contextlib.AbstractContextManager[None]: ...
    def next_runs(self, after: str | None, limit: int) -> list[tuple[str, str]]: ...
    def statuses(self, ids: Sequence[str]) -> dict[str, str]: ...
    def rows(self, table: str, columns: Sequence[str], ids: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]: ...
    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def counts(self, ids: Sequence[str]) -> dict[str, Counts]: ...
    def legacy_zone(self) -> str | None: ...
    def keep_legacy_zone(self, name: str) -> bool: ...


def end_of(store: Store) -> End:
    """The End over `store`'s own connection."""
    from stepflow.store.sqlite.store import SqliteStore

    if isinstance(store, SqliteStore):
        return SqliteEnd(store)
    from stepflow.store.postgres.store import PostgresStore

    if isinstance(store, PostgresStore):
        return PostgresEnd(store)
    raise StoreError(f"store {store.url}: db copy does not know this backend")


def _merge(found: dict[str, list[int]], rows: Sequence[Sequence[Any]], *slots: int) -> None:
    for row in rows:
        counts = found.setdefault(str(row[0]), [0, 0, 0, 0, 0])
        for slot, value in zip(slots, row[1:], strict=True):
            counts[slot] = int(value or 0)


# -- SQLite ---------------------------------------------------------------------------------


class SqliteEnd:
    """A SQLite store through its APSW connection; writes take BEGIN IMMEDIATE."""

    def __init__(self, store: Any) -> None:
        import apsw

        self.driver_error: type[Exception] = apsw.Error
        self.conn = store.conn
        self.file = store.file
        self.label = f"sqlite:///{os.path.abspath(store.file)}"

    def _error(self, exc: Exception) -> StoreError:
        from stepflow.store.connection import store_error

        return store_error(exc, self.file)  # type: ignore[arg-type]

    def identity(self) -> tuple[Any, ...]:
        st = os.stat(self.file)
        return ("sqlite", st.st_dev, st.st_ino)

    def columns(self, table: str) -> list[str]:
        from stepflow.store import schema

        return [c for c in self._table_columns(table) if (table, c) not in LOCAL_COLUMNS] \
            if schema.has_table(self.conn, table) else []

    def _table_columns(self, table: str) -> list[str]:
        return [str(r[1]) for r in self.conn.execute(f"PRAGMA table_info({table})")]

    @guarded
    def legacy_zone(self) -> str | None:
        """The zone `migrate` recorded for StepFlow Monitor's naive times, if any."""
        from stepflow.store import schema, zone

        return schema.meta(self.conn, zone.LEGACY_TZ_KEY)

    @guarded
    def keep_legacy_zone(self, name: str) -> bool:
        """Record `name` as the zone of naive times unless the store has one: True if recorded."""
        from stepflow.store import schema, zone

        if schema.meta(self.conn, zone.LEGACY_TZ_KEY) is not None:
            return False
        schema.set_meta(self.conn, zone.LEGACY_TZ_KEY, name)
        return True

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """One snapshot: a deferred transaction sees one commit's state to its end (WAL)."""
        try:
            self.conn.execute("BEGIN")
            try:
                yield
            finally:
                if not self.conn.getautocommit():
                    self.conn.execute("ROLLBACK")
        except self.driver_error as exc:
            raise self._error(exc) from exc

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        from stepflow.store.connection import immediate

        try:
            with immediate(self.conn):
                yield
        except self.driver_error as exc:
            raise self._error(exc) from exc

    @guarded
    def next_runs(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        rows = self.conn.execute("SELECT id, status FROM executions WHERE id > ? ORDER BY id LIMIT ?",
                                 (after if after is not None else "", limit)).fetchall()
        return [(str(i), str(s)) for i, s in rows]

    @staticmethod
    def _marks(ids: Sequence[str]) -> str:
        return ", ".join("?" * len(ids))

    @guarded
    def statuses(self, ids: Sequence[str]) -> dict[str, str]:
        rows = self.conn.execute(f"SELECT id, status FROM executions WHERE id IN ({self._marks(ids)})",
                                 tuple(ids)).fetchall()
        return {str(i): str(s) for i, s in rows}

    @guarded
    def rows(self, table: str, columns: Sequence[str], ids: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
        key = dict(TABLES)[table]
        order = ORDER[table].format(rowid="rowid")
        cursor = self.conn.execute(
            f"SELECT {', '.join(columns)} FROM {table} WHERE {key} IN ({self._marks(ids)}) ORDER BY {order}",
            tuple(ids))
        yield from batches(cursor, columns)

    @guarded
    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        sql = f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        self.conn.executemany(sql, rows)

    @guarded
    def delete(self, ids: Sequence[str]) -> None:
        marks = self._marks(ids)
        for table, key in reversed(TABLES):
            self.conn.execute(f"DELETE FROM {table} WHERE {key} IN ({marks})", tuple(ids))

    @guarded
    def counts(self, ids: Sequence[str]) -> dict[str, Counts]:
        from stepflow.store import schema

        marks, params = self._marks(ids), tuple(ids)
        found: dict[str, list[int]] = {i: [0, 0, 0, 0, 0] for i, in self.conn.execute(
            f"SELECT id FROM executions WHERE id IN ({marks})", params)}
        for table, slot in (("steps", 0), ("artifacts", 1), ("spooled", 4)):
            if not schema.has_table(self.conn, table):
                continue  # an older stepflow's store, read as it is: none of these rows
            sql = f"SELECT execution_id, COUNT(*) FROM {table} WHERE execution_id IN ({marks}) GROUP BY execution_id"
            _merge(found, self.conn.execute(sql, params).fetchall(), slot)
        if schema.has_table(self.conn, "logs"):
            _merge(found, self.conn.execute("SELECT execution_id, COUNT(*), SUM(line_count) FROM logs"
                                            f" WHERE execution_id IN ({marks}) GROUP BY execution_id",
                                            params).fetchall(), 2, 3)
        return {i: (c[0], c[1], c[2], c[3], c[4]) for i, c in found.items()}


# -- PostgreSQL -----------------------------------------------------------------------------

# What a copy may take where a history command would give up: a batch of big runs is more
# than a statement of `ls`, and the source's snapshot idles while the target writes.
COPY_SESSION = ("SELECT set_config('statement_timeout', '600s', false), set_config('lock_timeout', '60s', false),"
                " set_config('idle_in_transaction_session_timeout', '600s', false)")


def _bools(values: Sequence[Any]) -> list[Any]:
    return [v if v is None or isinstance(v, bool) else bool(v) for v in values]


def _floats(values: Sequence[Any]) -> list[Any]:
    return [float(v) if isinstance(v, int) else v for v in values]


def _texts(values: Sequence[Any]) -> Sequence[Any]:
    """Text PostgreSQL can hold (stepflow.store.postgres.queries.text): one test for the whole
    column, value by value only when it holds a NUL or a lone surrogate (legacy rows may)."""
    try:
        joined = "".join(values)
    except TypeError:
        joined = "".join(v for v in values if isinstance(v, str))
    if "\x00" not in joined:
        try:
            joined.encode("utf-8")
            return values
        except UnicodeEncodeError:
            pass
    from stepflow.store.postgres.queries import text

    return [text(v) if isinstance(v, str) else v for v in values]


CONVERT = {"boolean": _bools, "double precision": _floats, "text": _texts}


class PostgresEnd:
    """A PostgreSQL store through its psycopg connection (autocommit; transactions are explicit)."""

    def __init__(self, store: Any) -> None:
        import psycopg

        self.psycopg = psycopg
        self.driver_error = psycopg.Error
        self.store = store
        self.conn = store.conn
        self.label = store.url  # password masked
        self.types: dict[str, dict[str, str]] = {}
        self._run(lambda: self.conn.execute(COPY_SESSION))

    def _error(self, exc: Exception) -> StoreError:
        from stepflow.store.postgres.connection import store_error

        return store_error(exc, self.store.database)

    def _run(self, call: Any) -> Any:
        try:
            return call()
        except self.psycopg.Error as exc:
            raise self._error(exc) from exc

    def identity(self) -> tuple[Any, ...]:
        """The server (its system identifier, else where we reached it) and the database."""
        database = self._run(lambda: self.conn.execute("SELECT current_database()").fetchone())[0]
        try:  # outside a transaction (autocommit): a refusal here spoils nothing
            server: Any = self.conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
        except self.psycopg.Error:
            server = (self.conn.info.host, self.conn.info.port)
        return ("postgresql", server, database)

    def _types(self, table: str) -> dict[str, str]:
        if table not in self.types:
            rows = self._run(lambda: self.conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                (table,)).fetchall())
            self.types[table] = {str(n): str(t) for n, t in rows}
        return self.types[table]

    def columns(self, table: str) -> list[str]:
        return [c for c in self._types(table) if (table, c) not in LOCAL_COLUMNS]

    def legacy_zone(self) -> str | None:
        return None  # PostgreSQL keeps no zone for naive times: its readers read them in their own

    def keep_legacy_zone(self, name: str) -> bool:
        return False

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """One snapshot: a REPEATABLE READ transaction."""
        try:
            with self.conn.transaction():
                self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield
        except self.psycopg.Error as exc:
            raise self._error(exc) from exc

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        try:
            with self.conn.transaction():
                yield
        except self.psycopg.Error as exc:
            raise self._error(exc) from exc

    @guarded
    def next_runs(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        rows = self.conn.execute("SELECT id, status FROM executions WHERE id > %s ORDER BY id LIMIT %s",
                                 (after if after is not None else "", limit)).fetchall()
        return [(str(i), str(s)) for i, s in rows]

    @guarded
    def statuses(self, ids: Sequence[str]) -> dict[str, str]:
        rows = self.conn.execute("SELECT id, status FROM executions WHERE id = ANY(%s)", (list(ids),)).fetchall()
        return {str(i): str(s) for i, s in rows}

    @guarded
    def rows(self, table: str, columns: Sequence[str], ids: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
        key = dict(TABLES)[table]
        # A server-side cursor in binary: a run of a million lines never sits whole in memory,
        # and bytea comes as bytes, not hex text to parse.
        with self.conn.cursor(name=f"stepflow_copy_{table}", binary=True) as cur:
            order = ORDER[table].format(rowid="seq")
            cur.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {key} = ANY(%s) ORDER BY {order}",
                        (list(ids),))
            cur.itersize = 500
            yield from batches(iter(cur), columns)

    @guarded
    def insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """All rows in one statement, a column array each (as the store writes output blocks)."""
        types = self._types(table)
        arrays = []
        for column, values in zip(columns, zip(*rows, strict=True), strict=True):
            convert = CONVERT.get(types[column])
            arrays.append(list(convert(values) if convert else values))
        unnest = ", ".join(f"%b::{types[c]}[]" for c in columns)
        self.conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({unnest})"
                          " ON CONFLICT DO NOTHING", arrays)

    @guarded
    def delete(self, ids: Sequence[str]) -> None:
        for table, key in reversed(TABLES):
            self.conn.execute(f"DELETE FROM {table} WHERE {key} = ANY(%s)", (list(ids),))

    @guarded
    def counts(self, ids: Sequence[str]) -> dict[str, Counts]:
        params = (list(ids),)
        found: dict[str, list[int]] = {str(i): [0, 0, 0, 0, 0] for i, in self.conn.execute(
            "SELECT id FROM executions WHERE id = ANY(%s)", params).fetchall()}
        for table, slot in (("steps", 0), ("artifacts", 1), ("spooled", 4)):
            _merge(found, self.conn.execute(f"SELECT execution_id, COUNT(*) FROM {table}"
                                            " WHERE execution_id = ANY(%s) GROUP BY execution_id", params).fetchall(),
                   slot)
        _merge(found, self.conn.execute("SELECT execution_id, COUNT(*), SUM(line_count) FROM logs"
                                        " WHERE execution_id = ANY(%s) GROUP BY execution_id", params).fetchall(),
               2, 3)
        return {i: (c[0], c[1], c[2], c[3], c[4]) for i, c in found.items()}

"""Open the SQLite database through APSW with stepflow's pragmas, and write in IMMEDIATE transactions."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

import apsw

from stepflow.config import Settings
from stepflow.errors import StoreError, StoreLockedError, describe_os_error

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, TypeVar

    P = TypeVar("P", str, Path)  # a run's start-up passes str (no pathlib import); upkeep passes Path

JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # truncate a WAL that grew past this once it is checkpointed
APPEND_CACHE_PAGES = 100  # a run's writer only appends: a bigger cache only holds memory (40 MB at 10000)


def wal_path(db: P) -> P:
    """The write-ahead log beside `db` (SQLite names it so; nothing else should spell it)."""
    return _beside(db, "-wal")


def _beside(db: P, suffix: str) -> P:
    """`db` with `suffix` added to its name, of the same type (str or Path)."""
    return type(db)(os.fspath(db) + suffix)


def describe(exc: BaseException) -> str:
    """A short reason for an SQLite failure, in words a user can act on."""
    if isinstance(exc, apsw.BusyError | apsw.LockedError):
        return "database is locked by another process"
    if isinstance(exc, apsw.FullError):
        return "disk is full"
    if isinstance(exc, apsw.ReadOnlyError):
        return "database is read-only"
    if isinstance(exc, apsw.CantOpenError):
        return "database file cannot be opened"
    if isinstance(exc, apsw.CorruptError | apsw.NotADBError):
        return "database file is damaged or is not a database"
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return str(exc) or type(exc).__name__


def store_error(exc: BaseException, path: Path | str) -> StoreError:
    """Wrap an APSW or OS failure in a StoreError that names the database."""
    if isinstance(exc, apsw.BusyError | apsw.LockedError):
        from pathlib import Path

        from stepflow.store.sqlite.holders import describe_lock  # only a busy store pays for it

        return StoreLockedError(f"store {path}: {describe_lock(Path(path))}")
    if isinstance(exc, apsw.IOError) and _disk_full(os.fspath(path)):
        return StoreError(f"store {path}: disk is full (disk I/O error)")  # ENOSPC in a write SQLite maps
    return StoreError(f"store {path}: {describe(exc)}")


def _disk_full(db: str) -> bool:
    try:
        st = os.statvfs(os.path.dirname(db) or ".")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1024 * 1024


def connect(
    path: str | Path, settings: Settings, *, readonly: bool = False, appending: bool = False
) -> apsw.Connection:
    """Open `path` and apply the pragmas; a new, empty database is put in WAL mode.

    `appending`: the connection of a run's writer, which keeps a small page cache and no map.

    An existing database keeps its journal mode: only `migrate` and `rollback` change it.
    """
    if readonly:
        flags = apsw.SQLITE_OPEN_READONLY
    else:
        folder = os.path.dirname(os.path.abspath(path))
        for place in (os.path.dirname(folder), folder):  # <storage>/database: both private
            try:
                os.makedirs(place, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"store {path}: {describe(exc)}") from exc
        flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    try:
        is_new = not readonly and (not os.path.exists(path) or os.stat(path).st_size == 0)
        if is_new and os.path.exists(intent_path(os.fspath(path))):
            raise missing_store_error(path)
        conn = apsw.Connection(os.fspath(path), flags=flags)
        if readonly:
            conn = _readable(conn, path)
        wait_for_lock(conn, settings.busy_timeout_ms)
        # Double-quoted strings are identifiers only: catch typos instead of reading them as text.
        conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)
        conn.config(apsw.SQLITE_DBCONFIG_DQS_DDL, 0)
        if is_new:
            os.chmod(path, 0o600 & ~_umask())
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchall()[0][0]
            if mode != "wal":
                raise StoreError(f"store {path}: cannot use WAL mode here (journal mode is {mode})")
        for pragma in (
            "synchronous=NORMAL",
            f"cache_size={min(settings.cache_size, APPEND_CACHE_PAGES) if appending else settings.cache_size}",
            # A run's writer maps nothing: pages it touched through a map count as its memory,
            # and updating a million steps touches the whole table.
            f"mmap_size={0 if appending else settings.mmap_size}",
            f"wal_autocheckpoint={settings.wal_autocheckpoint}",
            f"journal_size_limit={JOURNAL_SIZE_LIMIT}", "temp_store=MEMORY",
        ):
            # One at a time, each to its end: APSW runs the next statement of a script only
            # when the rows of the one before are read, and some of these pragmas answer a row.
            conn.execute(f"PRAGMA {pragma}").fetchall()
    except apsw.Error as exc:
        raise store_error(exc, path) from exc
    except OSError as exc:
        raise StoreError(f"store {path}: {describe(exc)}") from exc
    return conn


def _readable(conn: apsw.Connection, path: str | Path) -> apsw.Connection:
    """`conn`, or when a reader cannot make the WAL index (a read-only mount, another user's
    folder, a full disk) and no WAL holds frames, the same file opened `immutable`: with no
    WAL, the database file is all there is, and nothing can change it while it cannot be written."""
    try:
        conn.execute("PRAGMA schema_version").fetchall()
        return conn
    except (apsw.IOError, apsw.CantOpenError, apsw.ReadOnlyError):
        wal = wal_path(os.fspath(path))
        if os.path.exists(wal) and os.stat(wal).st_size > 0:
            raise
    conn.close()
    from urllib.parse import quote

    return apsw.Connection(f"file:{quote(os.fspath(path))}?immutable=1",
                           flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)


def wait_for_lock(conn: apsw.Connection, ms: int) -> None:
    """Wait up to `ms` milliseconds for a lock another connection holds, polling every 0.5-3.5 ms.

    SQLite's own busy timeout backs off to sleeps of 100 ms: among a hundred runs writing at
    once on a loaded machine, the one that has waited longest polls least often, and can wait
    past a run writer's limit (then it spools) while the lock is free half the time. Short
    polls, jittered so waiters do not move in step, give every waiter the same chance.
    """
    if ms <= 0:
        conn.setbusytimeout(0)
        return
    deadline = 0.0

    def busy(count: int) -> bool:
        nonlocal deadline
        now = time.monotonic()
        if count == 0:
            deadline = now + ms / 1000
        left = deadline - now
        if left <= 0:
            return False
        time.sleep(min(left, 0.0005 + time.perf_counter_ns() % 3000 / 1e6))
        return True

    conn.setbusyhandler(busy)


def scalar(conn: apsw.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row, or None when there is no row."""
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def immediate(conn: apsw.Connection) -> Iterator[apsw.Connection]:
    """A write transaction that takes the write lock at BEGIN, so it never fails half-way on a lock.

    A deferred transaction that upgrades from read to write cannot wait for the lock (SQLite
    answers SQLITE_BUSY at once to avoid a deadlock); BEGIN IMMEDIATE waits up to the busy timeout.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if not conn.getautocommit():
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


MAINTENANCE_SUFFIX = ".maint"
RESTORE_INTENT_SUFFIX = ".restoring"


def missing_store_error(db: str | Path) -> StoreError:
    """What to say when there is no database at `db`: how to finish a restore, else how to start."""
    if os.path.exists(intent_path(os.fspath(db))):
        return StoreError(
            f"store {db}: a \"stepflow rollback --backup\" was interrupted before the backup was in place;"
            " run the same \"stepflow rollback --backup\" again to finish it (the database it set aside is"
            f" named in {intent_path(os.fspath(db))})"
        )
    return StoreError(f"no store at {db}; record a run with \"stepflow run -- CMD\"")


def intent_path(db: P) -> P:
    """The file `rollback --backup` keeps beside `db` while the database is being replaced."""
    return _beside(db, RESTORE_INTENT_SUFFIX)


def maintenance_lock_path(db: P) -> P:
    """The lock file beside `db` that `migrate` and `rollback` hold while no new connection may open."""
    return _beside(db, MAINTENANCE_SUFFIX)


@contextlib.contextmanager
def maintenance_pause(db: str | Path, *, timeout: float, poll: float = 0.02) -> Iterator[None]:
    """Wait while `stepflow migrate` or `rollback` holds the maintenance lock, then go on.

    Held shared while the store opens, so a maintenance command never starts half-way through
    an open. Without a lock file (no maintenance ever ran here) this costs one failed open().

    Raises:
        StoreLockedError: the maintenance lock was still held after `timeout` seconds.
    """
    try:
        fd = os.open(maintenance_lock_path(os.fspath(db)), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        yield
        return
    try:
        flock_within(fd, fcntl.LOCK_SH, timeout=timeout, db=db, poll=poll)
        yield
    finally:
        os.close(fd)


def flock_within(fd: int, operation: int, *, timeout: float, db: str | Path, poll: float = 0.02) -> None:
    """Take flock `operation` on the maintenance lock file `fd`, polling up to `timeout` seconds.

    A filesystem without flock has nothing to honour, so that counts as taken.

    Raises:
        StoreLockedError: still held elsewhere after `timeout`; the message names the holder.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                raise StoreLockedError(
                    f"store {db}: {holder} holds the maintenance lock; try again when it ends"
                ) from None
            time.sleep(poll)
        except OSError:
            return

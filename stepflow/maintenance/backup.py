"""Online, consistent, verified copies of the database, and finding them again.

The copy is SQLite's backup API in one step (-1: every page under one read transaction).
Copied in small steps it restarts whenever another process writes, and under a writer every
10 ms it never finishes. In WAL mode the read transaction blocks nobody; in rollback-journal
mode writers wait for it, as they would for any reader. The copy is written as `NAME.partial`,
fsynced with its folder, checked with `PRAGMA integrity_check`, and only then renamed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw

from stepflow.config import Settings
from stepflow.errors import StoreError
from stepflow.maintenance import fs, probe
from stepflow.record import field, record
from stepflow.store.connection import describe, scalar, wal_path

BACKUP_FOLDER = "backups"
PREFIX = "stepflow-"
SUFFIX = ".db"
SPACE_MARGIN = 1.1  # room for the copy, plus a little


@record
class BackupResult:
    """A verified backup file."""

    path: Path
    source: Path
    size: int
    seconds: float
    journal_mode: str  # of the copy: restoring it gives back this mode
    counts: dict[str, int] = field(default_factory=dict)
    copy_seconds: float = 0.0  # of `seconds`: the copy (the rest is the integrity check)

    def lines(self) -> list[str]:
        counts = ", ".join(f"{n} {t}" for t, n in self.counts.items()) or "no stepflow tables"
        return [
            f"backup   {self.path}",
            f"         {fs.human_size(self.size)}, {counts}; integrity ok; took {self.seconds:.2f} s",
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "source": str(self.source), "size": self.size,
                "seconds": round(self.seconds, 3), "journal_mode": self.journal_mode,
                "counts": self.counts, "integrity": "ok"}


def default_folder(settings: Settings) -> Path:
    return settings.storage / BACKUP_FOLDER


def backup_name(label: str, *, now: float | None = None) -> str:
    """`stepflow-20250802T134007Z-pre-migrate.db`: sorts by time, says why it was taken."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{PREFIX}{stamp}-{label}{SUFFIX}"


def unique_path(folder: Path, name: str) -> Path:
    """`folder/name`, or `name` with -2, -3... when that exists already."""
    path = folder / name
    n = 2
    while path.exists() or path.with_name(path.name + ".partial").exists():
        path = folder / f"{name.removesuffix(SUFFIX)}-{n}{SUFFIX}"
        n += 1
    return path


def backups(folder: Path) -> list[Path]:
    """The backups stepflow wrote into `folder`, oldest first (by the time in their names)."""
    try:
        found = [p for p in folder.iterdir()
                 if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX) and p.is_file()]
    except OSError:
        return []
    return sorted(found, key=lambda p: (p.name[len(PREFIX):len(PREFIX) + 16], p.stat().st_mtime, p.name))


def latest(folder: Path) -> Path | None:
    found = backups(folder)
    return found[-1] if found else None


def prepare_folder(folder: Path, needed: int, *, hint: str) -> None:
    """Create `folder` (private) and check it is writable and has room for `needed` bytes.

    Raises:
        StoreError: it cannot be created or written, or the disk is too full. Nothing is left behind.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe_file = folder / f".stepflow-write-test-{os.getpid()}"
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as exc:
        raise StoreError(f"cannot write backups to {folder}: {exc.strerror or exc}; {hint}") from exc
    free = fs.free_bytes(folder)
    if free < needed * SPACE_MARGIN:
        raise StoreError(
            f"not enough space in {folder} for a backup: {fs.human_size(needed)} needed,"
            f" {fs.human_size(free)} free; {hint}"
        )


def copy_database(conn: apsw.Connection, dest: Path) -> None:
    """Copy `conn`'s main database to `dest` (which must not exist) in one backup step, then fsync it.

    The destination is written without a journal and unsynced (it is a new file nobody else
    opens); the fsync of the file and of its folder afterwards makes it durable.
    """
    out = apsw.Connection(str(dest), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
    try:
        out.execute("PRAGMA journal_mode=OFF").fetchall()
        out.execute("PRAGMA synchronous=OFF").fetchall()
        with out.backup("main", conn, "main") as step:
            step.step(-1)
    finally:
        out.close()
    os.chmod(dest, 0o600)
    fs.fsync_file(dest)
    fs.fsync_dir(dest.parent)


def open_readonly_copy(path: Path) -> apsw.Connection:
    """A read-only connection to a file nobody writes: no locks, no -wal or -shm created beside it."""
    uri = "file:" + urllib.parse.quote(str(path.absolute())) + "?immutable=1"
    conn = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    conn.execute(f"PRAGMA mmap_size={min(fs.file_size(path), 4 * 1024**3)}").fetchall()
    return conn


def header_journal_mode(path: Path) -> str:
    """"wal" or "delete", as the file's header says (bytes 18-19 are 2 in WAL mode)."""
    with open(path, "rb") as f:
        header = f.read(20)
    return "wal" if header[18:19] == b"\x02" else "delete"


def integrity_problems(path: Path, *, full: bool = True, workers: int = 2) -> list[str]:
    """`PRAGMA integrity_check` of a file nobody writes, on `workers` connections at once: ["ok"] when sound.

    The whole check is split as SQLite itself defines it: `quick_check` (every page of every
    b-tree, the freelist, pages used twice or never) and `integrity_check(table)` per table
    (its b-trees again, and every index entry against its row), so it uses more than one core.
    With `full=False`, `quick_check` alone.
    """
    conn = open_readonly_copy(path)
    try:
        tasks = ["quick_check"]
        if full:
            sizes = [(int(scalar(conn, f'SELECT COUNT(*) FROM "{name}"')), str(name)) for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND rootpage > 0 AND name NOT LIKE 'sqlite_%'")]
            tasks = [f'integrity_check("{name}")' for _, name in sorted(sizes, reverse=True)] + tasks
    finally:
        conn.close()
    if len(tasks) == 1 or workers <= 1:
        return _run_checks(path, tasks)
    queue = list(tasks)
    lock = threading.Lock()

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        shares = [pool.submit(_run_queue, path, queue, lock) for _ in range(workers)]
        found = [problem for share in shares for problem in share.result()]
    problems = [p for p in found if p != "ok"]
    return problems or ["ok"]


def _run_queue(path: Path, queue: list[str], lock: threading.Lock) -> list[str]:
    """Run checks taken from `queue` on one connection of this thread's own."""
    conn = open_readonly_copy(path)
    out: list[str] = []
    try:
        while True:
            with lock:
                if not queue:
                    return out
                task = queue.pop(0)
            out += [" ".join(str(r[0]).split()) for r in conn.execute(f"PRAGMA {task}").fetchall()]
    finally:
        conn.close()


def _run_checks(path: Path, tasks: list[str]) -> list[str]:
    problems = [p for p in _run_queue(path, list(tasks), threading.Lock()) if p != "ok"]
    return problems or ["ok"]


def verify(path: Path, *, full: bool = True, name: str | None = None) -> dict[str, int]:
    """Check a backup with `PRAGMA integrity_check` (or quick_check); returns its table counts.

    `name` is what messages call the file (default: its path).

    Raises:
        StoreError: not a database, damaged, or not a stepflow/StepFlow Monitor store.
    """
    name = name or str(path)
    try:
        problems = integrity_problems(path, full=full)
        if problems != ["ok"]:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise StoreError(f"{name} failed its integrity check: {problems[0]}{more}")
        conn = open_readonly_copy(path)
        try:
            found = probe.counts(conn)
        finally:
            conn.close()
    except apsw.Error as exc:
        raise StoreError(f"{name} cannot be verified: {describe(exc)}") from exc
    if "executions" not in found:
        raise StoreError(f"{name} is not a stepflow store (it has no executions table)")
    return found


def take(conn: apsw.Connection, source: Path, dest: Path) -> BackupResult:
    """Copy, fsync and verify `conn`'s database into `dest`; nothing is left behind on failure.

    Raises:
        StoreError: the copy failed (locked, disk full...) or did not verify.
    """
    started = time.monotonic()
    remove_stale_partials(dest.parent)
    partial = dest.with_name(dest.name + ".partial")
    try:
        try:
            copy_database(conn, partial)
        except (apsw.Error, OSError) as exc:
            raise StoreError(f"backup of {source} to {dest} failed: {describe(exc)}") from exc
        copied = time.monotonic() - started
        try:
            found = verify(partial, name=f"the backup copy of {source}")
        except StoreError as exc:
            raise StoreError(f"{exc}; the store itself may be damaged: see \"stepflow db check\"") from exc
        mode = header_journal_mode(partial)
        os.replace(partial, dest)
        fs.fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return BackupResult(dest, source, fs.file_size(dest), time.monotonic() - started, mode, found, copied)


def remove_stale_partials(folder: Path) -> list[Path]:
    """`*.partial` copies in `folder` that a killed backup left (no process has them open)."""
    from stepflow.maintenance.legacy_status import holders

    removed = []
    with contextlib.suppress(OSError):
        partials = [Path(e.path) for e in os.scandir(folder) if e.name.endswith(".partial")]
        for path in partials:
            if not holders([path]):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


def backup_store(settings: Settings, dest: Path | None = None) -> BackupResult:
    """`stepflow backup [DEST]`: an online copy of the store, verified. DEST may be a folder.

    Raises:
        StoreError: no store, DEST exists or cannot be written, the copy failed or did not verify.
    """
    db = settings.database
    probe.require(db)
    if dest is None:
        folder = default_folder(settings)
        target = None
    elif dest.is_dir():
        folder, target = dest, None
    else:
        folder, target = dest.parent, dest
        if dest.exists() or dest.is_symlink():
            raise StoreError(f"{dest} exists already; give a new file name or a folder")
    needed = fs.file_size(db) + fs.file_size(wal_path(db))
    prepare_folder(folder, needed, hint="give another destination: stepflow backup DEST")
    path = target or unique_path(folder, backup_name("manual"))
    with probe.existing(settings, readonly=True) as conn:
        return take(conn, db, path)

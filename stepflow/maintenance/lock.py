"""The maintenance lock, and who holds a database open when a command needs it alone.

`migrate` and `rollback` take the lock exclusively; `open_store` (every `stepflow run`, `ls`,
`show`...) takes it shared while it opens, so new stepflow processes wait for the maintenance
to end and then go on. Processes that already hold the database open are found with psutil.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from stepflow.errors import StoreError
from stepflow.record import record
from stepflow.store.connection import flock_within, maintenance_lock_path

POLL = 0.02


@contextlib.contextmanager
def maintenance_lock(db: Path, *, what: str, wait: float) -> Iterator[None]:
    """Hold the maintenance lock of `db` (waiting up to `wait` seconds for another holder).

    The lock file stays beside the database afterwards (deleting it would let a waiting
    process lock a file nobody else sees); it names the holder while held.

    Raises:
        StoreLockedError: another maintenance command kept it for longer than `wait`.
        StoreError: the lock file cannot be created (read-only folder).
    """
    path = maintenance_lock_path(db)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot create the maintenance lock {path}: {exc.strerror or exc}") from exc
    try:
        flock_within(fd, fcntl.LOCK_EX, timeout=wait, db=db, poll=POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"stepflow {what} (pid {os.getpid()})\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the lock


@record(frozen=True)
class Holder:
    """A process that has one of the database's files open."""

    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


def database_files(db: Path) -> list[Path]:
    """The database and the files SQLite keeps beside it."""
    return [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))]


def holders(paths: Iterable[Path]) -> tuple[list[Holder], int]:
    """Processes other than this one with any of `paths` open, and how many could not be looked at.

    psutil is imported here, not at start-up: it costs ~40 ms and only failures need it.
    """
    import psutil

    wanted = {os.path.realpath(p) for p in paths}
    found: list[Holder] = []
    hidden = 0
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        if proc.pid == me:
            continue
        try:
            files = proc.open_files()
        except psutil.AccessDenied:
            hidden += 1
            continue
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if any(os.path.realpath(f.path) in wanted for f in files):
            cmdline = proc.info.get("cmdline") or [proc.info.get("name") or "?"]
            command = " ".join(" ".join(cmdline).split())  # one line, whatever the arguments hold
            found.append(Holder(proc.pid, command if len(command) <= 60 else command[:57] + "..."))
    return found, hidden


def describe_holders(db: Path) -> str:
    """`open in pid 12 (python serve.py), pid 40 (stepflow run ...)`, for a one-line error."""
    found, hidden = holders(database_files(db))
    if found:
        return "it is open in " + ", ".join(str(h) for h in found[:5]) + (" and more" if len(found) > 5 else "")
    note = f" ({hidden} processes could not be inspected: run as their owner or root to name them)" if (
        hidden and os.geteuid() != 0) else ""
    return "another connection has it open" + note

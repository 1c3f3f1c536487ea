"""`stepflow rollback`: back to a rollback journal, or back to a verified backup.

`--journal` needs the database to itself: SQLite refuses WAL -> DELETE while any other
connection is open, even an idle one. The maintenance lock keeps new stepflow processes out
while it retries; if others still hold the database, they are named and nothing changes.

`--backup` verifies the backup first, sets the current database aside (renamed beside it, so
the rollback can itself be undone), and copies the backup into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import apsw

from stepflow import procs
from stepflow.config import Settings
from stepflow.errors import StepflowError, StoreError
from stepflow.maintenance import backup, fs, probe
from stepflow.maintenance.journal import journal_mode, switch_journal_mode
from stepflow.maintenance.lock import database_files, describe_holders, holders, maintenance_lock
from stepflow.record import field, record
from stepflow.store.connection import connect, intent_path, store_error


@record
class RollbackResult:
    database: Path
    action: str  # "journal" or "backup"
    journal_before: str = ""
    journal_after: str = ""
    restored_from: Path | None = None
    set_aside: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)
    changed: bool = True
    seconds: float = 0.0

    def lines(self) -> list[str]:
        if self.action == "journal":
            if not self.changed:
                return [f"{self.database} is already in journal_mode={self.journal_after.upper()}: nothing to do"]
            return [f"{self.database}: journal_mode {self.journal_before.upper()} -> {self.journal_after.upper()}"
                    f" ({self.seconds:.2f} s); back to WAL with: stepflow migrate --to-wal"]
        counts = ", ".join(f"{n} {t}" for t, n in self.counts.items())
        out = [f"restored {self.database} from {self.restored_from}",
               f"  rows          {counts}; journal mode {self.journal_after}; integrity ok"]
        if self.set_aside is not None:
            out.append(f"  set aside     {self.set_aside} (undo with: stepflow rollback --backup {self.set_aside})")
        out.append(f"  took          {self.seconds:.2f} s")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"database": str(self.database), "action": self.action, "changed": self.changed,
                "journal_mode_before": self.journal_before, "journal_mode_after": self.journal_after,
                "restored_from": str(self.restored_from) if self.restored_from else None,
                "set_aside": str(self.set_aside) if self.set_aside else None, "counts": self.counts,
                "seconds": round(self.seconds, 3)}


def to_journal(settings: Settings, *, wait: float = 10.0) -> RollbackResult:
    """Switch the store to journal_mode=DELETE, or change nothing and name who holds it open.

    Raises:
        StoreLockedError: other processes kept the database open for `wait` seconds.
    """
    started = time.monotonic()
    db = settings.database
    with probe.existing(settings) as conn:
        result = RollbackResult(db, "journal", journal_before=journal_mode(conn))
        if result.journal_before == "delete":
            result.journal_after, result.changed = "delete", False
            return result
        with maintenance_lock(db, what="rollback --journal", wait=wait):
            _switch_or_name_holders(conn, db, settings, "delete", wait=wait)
        result.journal_after = journal_mode(conn)
    result.seconds = time.monotonic() - started
    return result


def _switch_or_name_holders(conn: apsw.Connection, db: Path, settings: Settings, mode: str, *, wait: float) -> None:
    try:
        switch_journal_mode(conn, mode, db, wait=wait, busy_ms=settings.busy_timeout_ms)
    except StoreError as exc:
        raise type(exc)(f"cannot switch {db} to journal_mode={mode.upper()}: {describe_holders(db)};"
                        " stop them and try again (nothing changed)") from exc


def to_backup(
    settings: Settings, path: Path | None = None, *, backup_dir: Path | None = None, wait: float = 10.0
) -> RollbackResult:
    """Restore `path` (default: the latest backup) over the store's database.

    Raises:
        StoreError: no backup, it does not verify, or the database is held open by others;
            the current database is then untouched.
    """
    started = time.monotonic()
    db = settings.database
    folder = backup_dir or backup.default_folder(settings)
    source = path or backup.latest(folder)
    if source is None:
        raise StoreError(f"no backups in {folder}; give one: stepflow rollback --backup PATH")
    if not source.is_file():
        raise StoreError(f"no backup at {source}")
    counts = backup.verify(source)  # before anything changes
    result = RollbackResult(db, "backup", restored_from=source.absolute(), counts=counts,
                            journal_after=backup.header_journal_mode(source))
    db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with maintenance_lock(db, what="rollback --backup", wait=wait):
        _remove_restore_leftovers(db)
        interrupted = read_intent(db)
        if db.exists():
            # The intent names the set-aside file before it exists: a kill at any moment
            # after leaves a store that says how to finish, never an empty one.
            aside = backup.unique_path(db.parent, backup.backup_name("before-rollback"))
            _write_intent(db, aside)
            try:
                result.journal_before, result.set_aside = _set_aside(db, settings, wait=wait, aside=aside)
            except BaseException:
                if db.exists():
                    _clear_intent(db)  # nothing was set aside
                raise
        elif interrupted is not None:
            # Killed between setting the database aside and putting the backup in place: the
            # intent file says where the old one went; finish what it began.
            result.set_aside = interrupted if interrupted.exists() else None
        try:
            _put_in_place(source, db, like=result.set_aside)
            found = backup.verify(db, full=False)
            if found != counts:
                raise StoreError(f"the restored copy holds {found}, the backup {counts}")
        except BaseException as exc:
            if result.set_aside is not None:
                os.replace(result.set_aside, db)
                fs.fsync_dir(db.parent)
            _clear_intent(db)
            if isinstance(exc, StepflowError | OSError):
                raise StoreError(f"restoring {source} failed: {exc}; the database is as it was") from exc
            raise
        _clear_intent(db)
    result.seconds = time.monotonic() - started
    return result


def _write_intent(db: Path, aside: Path | None) -> None:
    """Say, durably, that a restore is under way and where the old database was set aside.

    While it exists and the database does not, stepflow refuses to create an empty store in
    its place (store.connection.connect) and `health` says unhealthy.
    """
    marker = intent_path(db)
    temp = marker.with_name(marker.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (str(aside) if aside is not None else "").encode("utf-8", "surrogateescape"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, marker)
    fs.fsync_dir(db.parent)


def read_intent(db: Path) -> Path | None:
    """The set-aside database an interrupted `rollback --backup` left, if its intent file exists."""
    try:
        text = intent_path(db).read_bytes().decode("utf-8", "surrogateescape").strip()
    except OSError:
        return None
    return Path(text) if text else db.with_name(db.name + ".none")


def _clear_intent(db: Path) -> None:
    with contextlib.suppress(OSError):
        intent_path(db).unlink()
        fs.fsync_dir(db.parent)


def _remove_restore_leftovers(db: Path) -> None:
    """Temporary copies a killed `rollback --backup` left beside the database."""
    prefix = f".{db.name}-restore-"
    with contextlib.suppress(OSError):
        for entry in os.scandir(db.parent):
            pid = entry.name[len(prefix):]
            if entry.name.startswith(prefix) and pid.isdigit() and not procs.is_alive(int(pid), None):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
    with contextlib.suppress(OSError):
        intent_path(db).with_name(intent_path(db).name + ".tmp").unlink()


def _set_aside(db: Path, settings: Settings, *, wait: float, aside: Path) -> tuple[str, Path]:
    """Rename the current database beside itself, alone and in one file; returns its mode and new path.

    Switching to DELETE first proves no other connection uses it (and folds the WAL in);
    processes with it open but idle are found with psutil. A WAL database goes back to WAL
    once renamed, so restoring the set-aside file gives back exactly what was there.
    """
    conn = connect(db, settings)
    try:
        was = journal_mode(conn)
        if was == "wal":
            _switch_or_name_holders(conn, db, settings, "delete", wait=wait)
        others, _hidden = holders(database_files(db))
        if others:
            if was == "wal":
                with contextlib.suppress(StepflowError):
                    switch_journal_mode(conn, "wal", db, wait=wait, busy_ms=settings.busy_timeout_ms)
            raise StoreError(f"cannot restore over {db}: it is open in "
                             + ", ".join(str(h) for h in others[:5]) + "; stop them and try again (nothing changed)")
    finally:
        conn.close()
    for leftover in ("-wal", "-journal"):
        if fs.file_size(db.with_name(db.name + leftover)) > 0:
            raise StoreError(f"{db}{leftover} still holds changes; open the store once and try again (nothing changed)")
    os.replace(db, aside)
    try:
        with contextlib.suppress(OSError):
            db.with_name(db.name + "-shm").unlink()
        fs.fsync_dir(db.parent)
        if was == "wal":
            try:
                again = apsw.Connection(str(aside))
                try:
                    again.execute("PRAGMA journal_mode=WAL").fetchall()
                finally:
                    again.close()
            except apsw.Error as exc:
                raise store_error(exc, aside) from exc
    except BaseException:
        os.replace(aside, db)  # never leave the store without its database
        fs.fsync_dir(db.parent)
        raise
    return was, aside


def _put_in_place(source: Path, db: Path, *, like: Path | None = None) -> None:
    """Copy `source` to a temporary file beside `db`, fsync it, and rename it over `db`.

    The restored file gets the owner and mode of the database it replaces (`like`), so the
    server that used it (perhaps as another user) can open it again; else private, 0600.
    """
    temp = db.with_name(f".{db.name}-restore-{os.getpid()}")
    try:
        shutil.copyfile(source, temp)
        if like is not None:
            was = like.stat()
            os.chmod(temp, stat.S_IMODE(was.st_mode))
            with contextlib.suppress(PermissionError):  # only root may give a file away
                os.chown(temp, was.st_uid, was.st_gid)
        else:
            os.chmod(temp, 0o600)
        fs.fsync_file(temp)
        os.replace(temp, db)
        fs.fsync_dir(db.parent)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()

"""`stepflow checkpoint`: copy the WAL back into the database file, and say what it did.

PASSIVE never waits. FULL, RESTART and TRUNCATE wait for readers of old snapshots and stall
writers meanwhile, so they get a short busy timeout and "busy" is reported plainly rather
than waited out. A Litestream replica (`.<db>-litestream` beside the database) owns
checkpointing: stepflow then leaves the WAL alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import apsw

from stepflow.config import Settings
from stepflow.errors import UsageError
from stepflow.maintenance import fs, probe
from stepflow.record import field, record
from stepflow.store.connection import store_error, wal_path

MODES = ("passive", "full", "restart", "truncate")
BUSY_MS = 2000


@record
class CheckpointResult:
    database: Path
    mode: str
    journal_mode: str
    wal_before: int = 0
    wal_after: int = 0
    log_frames: int = 0
    checkpointed: int = 0
    busy: bool = False
    litestream: Path | None = None
    seconds: float = 0.0
    blockers: list[str] = field(default_factory=list)  # processes reading WAL frames, from /proc/locks

    @property
    def skipped(self) -> bool:
        return self.litestream is not None or self.journal_mode != "wal"

    def lines(self) -> list[str]:
        if self.litestream is not None:
            return [f"Litestream replicates {self.database} ({self.litestream} is there):"
                    " it checkpoints the WAL itself, so stepflow leaves it alone"]
        if self.journal_mode != "wal":
            return [f"{self.database} is in journal_mode={self.journal_mode.upper()}, not WAL:"
                    " nothing to checkpoint"]
        out = [f"checkpoint {self.mode.upper()}: {self.checkpointed} of {self.log_frames} WAL frames copied"
               f" into the database; WAL {fs.human_size(self.wal_before)} -> {fs.human_size(self.wal_after)}"
               f" ({self.seconds:.2f} s)"]
        if self.busy:
            who = (f" ({', '.join(self.blockers)})" if self.blockers else "")
            out.append(f"busy: other connections kept it from completing (readers of older snapshots or a writer){who};"
                       " the rest is copied by a later checkpoint")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"database": str(self.database), "mode": self.mode, "journal_mode": self.journal_mode,
                "wal_bytes_before": self.wal_before, "wal_bytes_after": self.wal_after,
                "log_frames": self.log_frames, "checkpointed_frames": self.checkpointed, "busy": self.busy,
                "blockers": self.blockers,
                "litestream": str(self.litestream) if self.litestream else None,
                "seconds": round(self.seconds, 3)}


def litestream_folder(db: Path) -> Path | None:
    """Litestream keeps its state in `.<dbname>-litestream` beside the database."""
    folder = db.with_name(f".{db.name}-litestream")
    return folder if folder.is_dir() else None


def checkpoint(settings: Settings, *, mode: str = "passive", busy_ms: int = BUSY_MS) -> CheckpointResult:
    """Run `PRAGMA wal_checkpoint(mode)` and measure the WAL before and after.

    Raises:
        UsageError: an unknown mode.
        StoreError: no store, or it cannot be opened.
    """
    mode = mode.lower()
    if mode not in MODES:
        raise UsageError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    db = settings.database
    wal = wal_path(db)
    probe.require(db)
    replica = litestream_folder(db)
    with probe.existing(settings, busy_ms=min(busy_ms, settings.busy_timeout_ms)) as conn:
        try:
            journal = str(probe.pragma(conn, "journal_mode")).lower()
        except apsw.Error as exc:
            raise store_error(exc, db) from exc
        result = CheckpointResult(db, mode, journal, litestream=replica)
        if result.skipped:
            return result
        result.wal_before = fs.file_size(wal)
        started = time.monotonic()
        try:
            counted: tuple[Any, ...] = ()
            if mode == "truncate":
                # TRUNCATE answers 0 frames once it has emptied the WAL: count them with a PASSIVE first.
                counted = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0]
            row: tuple[Any, ...] = conn.execute(f"PRAGMA wal_checkpoint({mode.upper()})").fetchall()[0]
            busy, log, done = row
            if counted:
                log, done = counted[1], counted[1] if not busy else counted[2]
        except (apsw.BusyError, apsw.LockedError):
            busy, log, done = 1, -1, -1
        except apsw.Error as exc:
            raise store_error(exc, db) from exc
        result.seconds = time.monotonic() - started
        result.wal_after = fs.file_size(wal)  # before closing: the last connection to close removes the WAL
        result.log_frames, result.checkpointed = max(int(log), 0), max(int(done), 0)
        # PASSIVE answers "not busy" when a reader kept frames back: frames left over are busy too.
        result.busy = bool(busy) or result.checkpointed < result.log_frames
        if result.busy:
            from stepflow.store.sqlite.holders import wal_readers, write_lock_holders

            result.blockers = [f"{h} reads the WAL" for h in wal_readers(db)] + [
                f"{h} holds the write lock" for h in write_lock_holders(db)]
    return result

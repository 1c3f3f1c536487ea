"""Which process holds an SQLite database's write lock, or pins its WAL with a read transaction.

SQLite locks with POSIX byte-range locks, which Linux lists in /proc/locks with the pid and
the file's device and inode: in WAL mode the write lock is byte 120 of the -shm file and
the read marks bytes 123-127 (held for the length of a read transaction); in rollback mode
the RESERVED byte of the database file. Read only on failure
(a busy store, a checkpoint that could not finish), never on a run's hot path; elsewhere
than Linux nothing is found and the messages say "another process".
"""

from __future__ import annotations

import os
from pathlib import Path

from stepflow.record import record

WAL_WRITE_BYTE = 120
WAL_READ_BYTES = range(123, 128)  # read marks 0-4: a read transaction, which a checkpoint cannot pass
RESERVED_BYTE = 0x40000001


@record(frozen=True)
class Holder:
    pid: int
    command: str
    stopped: bool

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})" + (", which is stopped" if self.stopped else "")


def _lock_rows() -> list[tuple[str, int, tuple[int, int, int], int, float]]:
    rows: list[tuple[str, int, tuple[int, int, int], int, float]] = []
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return rows
    for line in text.splitlines():
        parts = line.replace("->", " ").split()
        if len(parts) < 8 or parts[1] != "POSIX":
            continue
        try:
            major, minor, inode = parts[5].split(":")
            end = float("inf") if parts[7] == "EOF" else int(parts[7])
            rows.append((parts[3], int(parts[4]), (int(major, 16), int(minor, 16), int(inode)), int(parts[6]), end))
        except ValueError:
            continue
    return rows


def _key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)


def _holder(pid: int) -> Holder:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = " ".join(raw.decode("utf-8", "replace").split("\0")).strip() or "?"
    except OSError:
        command = "?"
    command = " ".join(command.split())
    if len(command) > 60:
        command = command[:57] + "..."
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        stopped = stat[stat.rindex(")") + 2:][:1] in ("T", "t")
    except (OSError, ValueError):
        stopped = False
    return Holder(pid, command, stopped)


def _holding(path: Path, kind: str | None, wanted: range) -> list[Holder]:
    key = _key(path)
    if key is None:
        return []
    me = os.getpid()
    pids = sorted({pid for typ, pid, k, start, end in _lock_rows()
                   if k == key and pid not in (me, -1) and (kind is None or typ == kind)
                   and any(start <= b <= end for b in wanted)})
    return [_holder(pid) for pid in pids]


def write_lock_holders(db: Path) -> list[Holder]:
    """Processes holding `db`'s write lock (WAL or rollback mode)."""
    shm = db.with_name(db.name + "-shm")
    found = _holding(shm, "WRITE", range(WAL_WRITE_BYTE, WAL_WRITE_BYTE + 1))
    return found or _holding(db, "WRITE", range(RESERVED_BYTE, RESERVED_BYTE + 1))


def wal_readers(db: Path) -> list[Holder]:
    """Processes in a read transaction on WAL frames: they keep a checkpoint from finishing."""
    return _holding(db.with_name(db.name + "-shm"), "READ", WAL_READ_BYTES)


def describe_lock(db: Path) -> str:
    """`database is locked by pid 12 (sqlite3 x.db), which is stopped`, or by another process."""
    found = write_lock_holders(db)
    if not found:
        return "database is locked by another process"
    return "database is locked by " + ", ".join(str(h) for h in found[:3])

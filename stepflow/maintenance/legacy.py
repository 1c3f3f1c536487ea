"""What only a StepFlow Monitor store needs when it comes across: its step log files and its
`running` rows.

Log files (`executions/<id>/step_<i>_<step id>.log`, lines `[<iso time>] <content>`) are read
and staged in a scratch database *before* the migration transaction, so the write lock is
held only for one INSERT ... SELECT. The files themselves are never changed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import apsw

from stepflow.record import record
from stepflow.store.zone import resolve_artifact

EXECUTIONS_FOLDER = "executions"
LOG_FILE = re.compile(r"^step_(\d+)_(.+)\.log$")
BLOCK_BYTES = 64 * 1024  # lines of one time stamp are grouped in blocks of at most this many bytes


@record(frozen=True)
class LogFile:
    """One legacy step log file."""

    execution_id: str
    file_index: int  # the <i> of the file name
    step_id: str
    path: Path


@record(frozen=True)
class Block:
    """Lines of one file that go into one `logs` row."""

    ts: float
    line_count: int
    data: bytes
    cut: int = 0


@record
class LogScan:
    """What the log files hold, and what the import did with them."""

    files: int = 0
    lines: int = 0
    bytes: int = 0
    unreadable: int = 0


def log_files(storage: Path, *, only: set[str] | None = None) -> Iterator[LogFile]:
    """Every `executions/<id>/step_<i>_<step id>.log` under `storage` (of the runs in `only`,
    if given), in a stable order: grouped by run."""
    root = storage / EXECUTIONS_FOLDER
    try:
        runs = sorted((e for e in os.scandir(root) if e.is_dir(follow_symlinks=False)
                       and (only is None or e.name in only)), key=lambda e: e.name)
    except OSError:
        return
    for run in runs:
        try:
            names = sorted(os.listdir(run.path))
        except OSError:
            continue
        for name in names:
            match = LOG_FILE.match(name)
            if match:
                yield LogFile(run.name, int(match.group(1)), match.group(2), Path(os.path.join(run.path, name)))


def line_time(line: bytes, zone: tzinfo | None = None) -> tuple[float | None, bytes]:
    """`[2025-08-02T13:40:07.123456] text` -> (epoch, b"text"); naive times are in `zone`
    (None: this host's local time).

    A line without a readable time stamp is returned whole, with None.
    """
    return TimeReader(zone).read(line)


class TimeReader:
    """line_time for many lines: the epoch of each whole second is computed once and cached
    (a log's lines share their seconds), the fraction added to it; only a time with an
    offset, or one not in the usual form, goes through a full datetime parse."""

    __slots__ = ("zone", "seconds")

    def __init__(self, zone: tzinfo | None) -> None:
        self.zone = zone
        self.seconds: dict[bytes, float] = {}

    def read(self, line: bytes) -> tuple[float | None, bytes]:
        if line[:1] != b"[":
            return None, line
        end = line.find(b"]", 1)
        if end < 0 or end > 40:
            return None, line
        content = line[end + 2 :] if line[end + 1 : end + 2] == b" " else line[end + 1 :]
        if end == 20 or (line[20:21] == b"." and 22 <= end <= 27 and line[21:end].isdigit()):
            base = self.seconds.get(line[1:20])
            if base is None:
                base = self._parse(line[1:20])
                if base is None:
                    return None, line
                self.seconds[line[1:20]] = base
            if end == 20:
                return base, content
            return base + int(line[21:end]) / 10 ** (end - 21), content
        ts = self._parse(line[1:end])
        return (None, line) if ts is None else (ts, content)

    def _parse(self, text: bytes) -> float | None:
        try:
            value = datetime.fromisoformat(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.zone) if self.zone is not None else value.astimezone()
        return value.timestamp()


def parse_log(data: bytes, *, fallback_ts: float, max_line: int, zone: tzinfo | None = None,
              times: TimeReader | None = None) -> list[Block]:
    """The lines of one log file as blocks: content without the time stamp, time as epoch.

    Each line keeps its own time: a new block starts whenever the time stamp changes, so
    `logs --timestamps` shows every legacy line's own time. Lines without a time stamp
    (continuations) take the time of the line before, in its block. A line longer than
    `max_line` is cut, in a block of its own, with the bytes dropped counted.
    """
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    blocks: list[Block] = []
    current: list[bytes] = []
    size = 0
    block_ts = last_ts = fallback_ts
    read = (times or TimeReader(zone)).read

    def flush() -> None:
        nonlocal current, size
        if current:
            blocks.append(Block(block_ts, len(current), b"\n".join(current)))
            current, size = [], 0

    for raw in lines:
        ts, content = read(raw)
        if ts is not None:
            last_ts = ts
        cut = max(0, len(content) - max_line)
        if cut or (ts is not None and ts != block_ts) or size + len(content) + 1 > BLOCK_BYTES:
            flush()
        if cut:
            blocks.append(Block(last_ts, 1, content[:max_line], cut))
            continue
        if not current:
            block_ts = last_ts
        current.append(content)
        size += len(content) + 1
    flush()
    return blocks


STAGING_SCHEMA = """
CREATE TABLE blocks (
    execution_id TEXT NOT NULL, step_id TEXT NOT NULL, file_index INTEGER NOT NULL,
    seq INTEGER NOT NULL, line_count INTEGER NOT NULL, ts REAL NOT NULL, data BLOB NOT NULL,
    cut INTEGER NOT NULL);
CREATE TABLE runs (n INTEGER PRIMARY KEY, execution_id TEXT NOT NULL UNIQUE, lines INTEGER NOT NULL);
CREATE TABLE files (execution_id TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL);
"""
STAGING_INDEX = "CREATE INDEX blocks_run ON blocks (execution_id); CREATE INDEX files_run ON files (execution_id)"


def scan_logs(storage: Path) -> LogScan:
    """Count the log files and lines without keeping them (for --dry-run). Read-only."""
    scan = LogScan()
    for item in log_files(storage):
        try:
            data = item.path.read_bytes()
        except OSError:
            scan.unreadable += 1
            continue
        scan.files += 1
        scan.bytes += len(data)
        scan.lines += data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return scan


def stage_logs(storage: Path, staging: Path, *, max_line: int, zone: tzinfo | None = None,
               only: set[str] | None = None) -> LogScan:
    """Parse every log file (of the runs in `only`, if given) into a new scratch database.

    The scratch database is private (0600) and journal-less: it is thrown away after the
    import, and a crash leaves only a file the next migrate removes.
    """
    scan = LogScan()
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    os.close(os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    conn = apsw.Connection(str(staging))
    try:
        conn.execute("PRAGMA journal_mode=OFF").fetchall()
        conn.execute("PRAGMA synchronous=OFF").fetchall()
        conn.execute(STAGING_SCHEMA)
        conn.execute("BEGIN")
        run_id, run_lines = "", 0
        times = TimeReader(zone)
        rows: list[tuple[Any, ...]] = []
        files: list[tuple[Any, ...]] = []
        insert = "INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        for item in log_files(storage, only=only):
            path = str(item.path)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    stat = os.fstat(fd)
                    data = os.read(fd, stat.st_size + 1)
                    if len(data) > stat.st_size:  # written to since the stat: read to its end
                        data += b"".join(iter(functools.partial(os.read, fd, 1 << 20), b""))
                finally:
                    os.close(fd)
            except OSError:
                scan.unreadable += 1
                continue
            if item.execution_id != run_id:
                if run_id:
                    conn.execute("INSERT INTO runs (execution_id, lines) VALUES (?, ?)", (run_id, run_lines))
                run_id, run_lines = item.execution_id, 0
            blocks = parse_log(data, fallback_ts=stat.st_mtime, max_line=max_line, times=times)
            rows += [(item.execution_id, item.step_id, item.file_index, seq, b.line_count, b.ts, b.data, b.cut)
                     for seq, b in enumerate(blocks)]
            files.append((item.execution_id, os.path.basename(path), stat.st_size, stat.st_mtime_ns))
            if len(rows) > 20000:
                conn.executemany(insert, rows)
                conn.executemany("INSERT INTO files VALUES (?, ?, ?, ?)", files)
                rows, files = [], []
            lines = sum(b.line_count for b in blocks)
            run_lines += lines
            scan.files += 1
            scan.bytes += len(data)
            scan.lines += lines
        conn.executemany(insert, rows)
        conn.executemany("INSERT INTO files VALUES (?, ?, ?, ?)", files)
        if run_id:
            conn.execute("INSERT INTO runs (execution_id, lines) VALUES (?, ?)", (run_id, run_lines))
        conn.execute(STAGING_INDEX)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return scan


def staged_runs(conn: apsw.Connection) -> int:
    """How many runs the attached staging database holds (their `n` go from 1 to this)."""
    row: tuple[Any, ...] = conn.execute("SELECT COALESCE(MAX(n), 0) FROM staged.runs").fetchall()[0]
    return int(row[0])


def import_chunk(conn: apsw.Connection, first: int, last: int, *, replace: bool = False) -> tuple[int, int]:
    """Inside one short write transaction: copy the staged blocks of runs `first`..`last`.

    The staging database must be attached as `staged`. Lines are numbered per run in step
    order (the step's index from its row, else the file name's), then file order. A run that
    already has log rows is left alone (so a rerun after a crash imports only what is
    missing), unless `replace`: then its legacy lines are imported again (the old server
    rewrote its log files since). Returns (runs, lines) imported. Every statement finds its
    rows through an index: the work is proportional to the chunk, not to the store (CROSS JOIN
    keeps the chunk the outer loop: without statistics the planner scanned every staged
    block for each chunk, which made the import quadratic).
    """
    conn.execute("CREATE TEMP TABLE legacy_chunk (id TEXT PRIMARY KEY, lines INTEGER NOT NULL)")
    conn.execute(
        "INSERT INTO temp.legacy_chunk SELECT r.execution_id, r.lines FROM staged.runs r"
        " WHERE r.n BETWEEN ? AND ? AND EXISTS (SELECT 1 FROM main.executions e WHERE e.id = r.execution_id)"
        + ("" if replace else
           " AND NOT EXISTS (SELECT 1 FROM main.logs l WHERE l.execution_id = r.execution_id)"),
        (first, last),
    )
    try:
        if replace:
            conn.execute("DELETE FROM main.logs WHERE execution_id IN (SELECT id FROM temp.legacy_chunk)")
            conn.execute("DELETE FROM main.legacy_log_files WHERE execution_id IN (SELECT id FROM temp.legacy_chunk)")
        conn.execute(
            """
            INSERT INTO main.logs (execution_id, step_index, stream, first_line, line_count, ts, data, cut)
            SELECT execution_id, idx, 1,
                   SUM(line_count) OVER (PARTITION BY execution_id ORDER BY idx, file_index, step_id, seq
                                         ROWS UNBOUNDED PRECEDING) - line_count,
                   line_count, ts, data, cut
            FROM (SELECT b.*, COALESCE(s.step_index, b.file_index) AS idx
                  FROM temp.legacy_chunk i CROSS JOIN staged.blocks b ON b.execution_id = i.id
                  LEFT JOIN main.steps s ON s.id = b.step_id AND s.execution_id = b.execution_id)
            ORDER BY execution_id, idx, file_index, step_id, seq
            """
        )
        conn.execute(
            "UPDATE main.executions SET line_count ="
            " (SELECT i.lines FROM temp.legacy_chunk i WHERE i.id = executions.id)"
            " WHERE id IN (SELECT id FROM temp.legacy_chunk)"
        )
        conn.execute(
            "INSERT OR REPLACE INTO main.legacy_log_files (execution_id, name, size, mtime_ns)"
            " SELECT f.execution_id, f.name, f.size, f.mtime_ns FROM temp.legacy_chunk i"
            " CROSS JOIN staged.files f ON f.execution_id = i.id"
        )
        row: tuple[Any, ...] = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(lines), 0) FROM temp.legacy_chunk").fetchall()[0]
    finally:
        conn.execute("DROP TABLE temp.legacy_chunk")
    return int(row[0]), int(row[1])


def missing_artifacts(conn: apsw.Connection, storage: Path) -> int:
    """Artifacts whose file is not there (the legacy copy failed, or it was deleted). Read-only."""
    return count_missing([str(r[0] or "") for r in conn.execute("SELECT file_path FROM artifacts")], storage)


def count_missing(paths: list[str], storage: Path) -> int:
    """How many of the artifact `paths` name no file (see stepflow.store.zone.resolve_artifact)."""
    return sum(resolve_artifact(path, storage) is None for path in paths)

"""What only a StepFlow Monitor store needs when it comes across: its step log files and its
`running` rows.

Log files (`executions/<id>/step_<i>_<step id>.log`, lines `[<iso time>] <content>`) are read
and staged in a scratch database *before* the migration transaction, so the write lock is
held only for one INSERT ... SELECT. The files themselves are never changed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import apsw

EXECUTIONS_FOLDER = "executions"
LOG_FILE = re.compile(r"^step_(\d+)_(.+)\.log$")
BLOCK_BYTES = 64 * 1024  # lines are grouped in blocks of at most this many bytes...
# ...and only while they fall in the same second: `logs --timestamps` shows seconds, so a block's
# one time stamp shows every line's own second.
ABANDONED_NOTE = "marked abandoned by stepflow migrate: the StepFlow Monitor server that ran it is gone"


@dataclass(frozen=True, slots=True)
class LogFile:
    """One legacy step log file."""

    execution_id: str
    file_index: int  # the <i> of the file name
    step_id: str
    path: Path


@dataclass(frozen=True, slots=True)
class Block:
    """Lines of one file that go into one `logs` row."""

    ts: float
    line_count: int
    data: bytes
    cut: int = 0


@dataclass(slots=True)
class LogScan:
    """What the log files hold, and what the import did with them."""

    files: int = 0
    lines: int = 0
    bytes: int = 0
    unreadable: int = 0


def log_files(storage: Path) -> Iterator[LogFile]:
    """Every `executions/<id>/step_<i>_<step id>.log` under `storage`, in a stable order."""
    root = storage / EXECUTIONS_FOLDER
    try:
        runs = sorted((e for e in os.scandir(root) if e.is_dir(follow_symlinks=False)), key=lambda e: e.name)
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
                yield LogFile(run.name, int(match.group(1)), match.group(2), Path(run.path) / name)


def line_time(line: bytes) -> tuple[float | None, bytes]:
    """`[2025-08-02T13:40:07.123456] text` -> (epoch, b"text"); naive times are local time.

    A line without a readable time stamp is returned whole, with None.
    """
    if line[:1] != b"[":
        return None, line
    end = line.find(b"]", 1)
    if end < 0 or end > 40:
        return None, line
    try:
        value = datetime.fromisoformat(line[1:end].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None, line
    ts = (value if value.tzinfo else value.astimezone()).timestamp()
    content = line[end + 2 :] if line[end + 1 : end + 2] == b" " else line[end + 1 :]
    return ts, content


def parse_log(data: bytes, *, fallback_ts: float, max_line: int) -> list[Block]:
    """The lines of one log file as blocks: content without the time stamp, time as epoch.

    Lines without a time stamp (continuations) take the time of the line before. A line longer
    than `max_line` is cut, in a block of its own, with the bytes dropped counted.
    """
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    blocks: list[Block] = []
    current: list[bytes] = []
    size = 0
    block_ts = last_ts = fallback_ts
    second = -1

    def flush() -> None:
        nonlocal current, size
        if current:
            blocks.append(Block(block_ts, len(current), b"\n".join(current)))
            current, size = [], 0

    for raw in lines:
        ts, content = line_time(raw)
        if ts is not None:
            last_ts = ts
        cut = max(0, len(content) - max_line)
        if cut or (ts is not None and int(ts) != second) or size + len(content) + 1 > BLOCK_BYTES:
            flush()
        if cut:
            blocks.append(Block(last_ts, 1, content[:max_line], cut))
            continue
        if not current:
            block_ts, second = last_ts, int(last_ts)
        current.append(content)
        size += len(content) + 1
    flush()
    return blocks


STAGING_SCHEMA = """
CREATE TABLE blocks (
    execution_id TEXT NOT NULL, step_id TEXT NOT NULL, file_index INTEGER NOT NULL,
    seq INTEGER NOT NULL, line_count INTEGER NOT NULL, ts REAL NOT NULL, data BLOB NOT NULL,
    cut INTEGER NOT NULL);
"""


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


def stage_logs(storage: Path, staging: Path, *, max_line: int) -> LogScan:
    """Parse every log file into the `blocks` table of a new scratch database at `staging`."""
    scan = LogScan()
    conn = apsw.Connection(str(staging))
    try:
        conn.execute("PRAGMA journal_mode=OFF").fetchall()
        conn.execute("PRAGMA synchronous=OFF").fetchall()
        conn.execute(STAGING_SCHEMA)
        conn.execute("BEGIN")
        for item in log_files(storage):
            try:
                data = item.path.read_bytes()
                mtime = item.path.stat().st_mtime
            except OSError:
                scan.unreadable += 1
                continue
            blocks = parse_log(data, fallback_ts=mtime, max_line=max_line)
            conn.executemany(
                "INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(item.execution_id, item.step_id, item.file_index, seq, b.line_count, b.ts, b.data, b.cut)
                 for seq, b in enumerate(blocks)],
            )
            scan.files += 1
            scan.bytes += len(data)
            scan.lines += sum(b.line_count for b in blocks)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return scan


def import_staged(conn: apsw.Connection) -> tuple[int, int]:
    """Inside the migration transaction: copy staged blocks of runs that have no log rows yet.

    The staging database must be attached as `staged`. Lines are numbered per run in step
    order (the step's index from its row, else the file name's), then file order. Returns
    (runs, lines) imported. Runs that already have log rows are left alone, so it is idempotent.
    """
    conn.execute(
        "CREATE TEMP TABLE legacy_import AS SELECT DISTINCT b.execution_id AS id FROM staged.blocks b"
        " WHERE EXISTS (SELECT 1 FROM main.executions e WHERE e.id = b.execution_id)"
        " AND NOT EXISTS (SELECT 1 FROM main.logs l WHERE l.execution_id = b.execution_id)"
    )
    try:
        conn.execute(
            """
            INSERT INTO main.logs (execution_id, step_index, stream, first_line, line_count, ts, data, cut)
            SELECT execution_id, idx, 1,
                   SUM(line_count) OVER (PARTITION BY execution_id ORDER BY idx, file_index, step_id, seq
                                         ROWS UNBOUNDED PRECEDING) - line_count,
                   line_count, ts, data, cut
            FROM (SELECT b.*, COALESCE(s.step_index, b.file_index) AS idx
                  FROM staged.blocks b JOIN temp.legacy_import i ON i.id = b.execution_id
                  LEFT JOIN main.steps s ON s.id = b.step_id AND s.execution_id = b.execution_id)
            ORDER BY execution_id, idx, file_index, step_id, seq
            """
        )
        conn.execute(
            "UPDATE main.executions SET line_count = COALESCE(line_count, 0)"
            " + (SELECT SUM(line_count) FROM staged.blocks b WHERE b.execution_id = executions.id)"
            " WHERE id IN (SELECT id FROM temp.legacy_import)"
        )
        row: tuple[Any, ...] = conn.execute(
            "SELECT COUNT(DISTINCT execution_id), COALESCE(SUM(line_count), 0) FROM staged.blocks"
            " WHERE execution_id IN (SELECT id FROM temp.legacy_import)"
        ).fetchall()[0]
    finally:
        conn.execute("DROP TABLE temp.legacy_import")
    return int(row[0]), int(row[1])


def abandon_running(conn: apsw.Connection) -> int:
    """Inside the migration transaction: legacy `running` rows can never finish; say so.

    The legacy fields stay as they were (error_message included); the note goes into the new
    `warnings` column, which `stepflow show` prints.
    """
    conn.execute(
        "UPDATE executions SET status = 'abandoned', warnings = json_array(?) WHERE status = 'running'",
        (ABANDONED_NOTE,),
    )
    return int(conn.changes())


def missing_artifacts(conn: apsw.Connection, storage: Path) -> int:
    """Artifacts whose file is not there (the legacy copy failed, or it was deleted). Read-only."""
    return count_missing([str(r[0] or "") for r in conn.execute("SELECT file_path FROM artifacts")], storage)


def count_missing(paths: list[str], storage: Path) -> int:
    """How many of the artifact `paths` name no file.

    A relative path was relative to the legacy server's folder, usually the storage folder's
    parent (`storage/artifacts/...`), so it is looked for there, in storage and here.
    """
    missing = 0
    for path in paths:
        if not path:
            missing += 1
        elif os.path.isabs(path):
            missing += not os.path.exists(path)
        else:
            missing += not any(os.path.exists(base / path) for base in (storage.parent, storage, Path.cwd()))
    return missing

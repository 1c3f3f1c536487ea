"""Statuses a StepFlow Monitor store left that stepflow shows otherwise, the legacy value kept.

Runs. The old engine writes only `pending`, `completed` and `failed` (and direct saves write
`running` or `pending` too); a run whose server died stays `pending` forever. A legacy row
(no stepflow pid) that is `pending`/`running` is judged **abandoned** when both:
  - no other process holds the database (or its WAL) or a file under the storage folder
    open: the last release keeps one connection open for as long as it runs, so a live
    server is seen; and
  - nothing was written for it for LEGACY_GRACE seconds (its newest time: created, started,
    or one of its steps'): the pre-WAL release opens a connection only for each save, so a
    run it is executing right now is recognised by its recent writes.
Otherwise it is left alone, to be judged again by the next `stepflow migrate --to-wal`.

Steps. The old engine never saves a step again once it completed implicitly (by the next
STEP_START or the end of the process), so finished runs hold steps still `running`. In a run
that is no longer open, such a step gets the status stepflow's own rule gives:
  - a later step exists: `completed` (the next STEP_START completed it);
  - it is the last step: `completed` if the run completed, `failed` if the run failed or
    ended otherwise (cancelled, abandoned: the step never finished).
Either way the value the old server wrote goes into `legacy_status` (runs and steps), and
every other legacy field is left as it was.
"""

from __future__ import annotations

import json
import os
import time
from datetime import tzinfo
from pathlib import Path
from typing import Any

import apsw

from stepflow.store.zone import epoch

LEGACY_GRACE = 3600.0  # seconds without a write before an open legacy run counts as abandoned
ABANDONED_NOTE = "marked abandoned by stepflow migrate: the StepFlow Monitor server that ran it is gone"


def holders(paths: list[Path], folder: Path | None = None) -> list[int]:
    """Pids of other processes with one of `paths`, or a file under `folder`, open. Read-only.

    Reads /proc; where it is absent (not Linux) nothing is known to hold anything.
    """
    wanted = {str(p.resolve()) for p in paths}
    prefix = str(folder.resolve()) + os.sep if folder is not None else None
    mine = os.getpid()
    found = []
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    for pid in pids:
        if pid == mine:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target in wanted or (prefix is not None and target.startswith(prefix)):
                found.append(pid)
                break
    return found


def abandon_open_runs(conn: apsw.Connection, db: Path, storage: Path, *, zone: tzinfo | None,
                      now: float | None = None, grace: float = LEGACY_GRACE, only: str | None = None,
                      others: list[int] | None = None) -> int:
    """Inside a write transaction: mark legacy runs nothing can finish `abandoned`; how many.

    The legacy status goes into `legacy_status`, a note into `warnings`; nothing else changes.
    """
    if others is None:
        others = holders([db, db.with_name(db.name + "-wal")], storage)
    if others:
        return 0  # an old server may be alive: its runs are its own to finish
    now = time.time() if now is None else now
    rows = conn.execute(
        "SELECT e.id, e.created_at, e.started_at, (SELECT MAX(COALESCE(s.completed_at, s.started_at, s.created_at))"
        " FROM steps s WHERE s.execution_id = e.id) FROM executions e"
        " WHERE e.status IN ('pending', 'running') AND e.pid IS NULL" + (" AND e.id = ?" if only else ""),
        (only,) if only else (),
    ).fetchall()
    gone = []
    for run_id, *times in rows:
        stamps = [t for t in (epoch(str(x), zone) if x else None for x in times) if t is not None]
        if not stamps or now - max(stamps) >= grace:
            gone.append(str(run_id))
    note = json.dumps([ABANDONED_NOTE])
    for start in range(0, len(gone), 500):
        chunk = gone[start:start + 500]
        conn.execute(
            "UPDATE executions SET legacy_status = COALESCE(legacy_status, status), status = 'abandoned',"
            " warnings = COALESCE(warnings, ?)"
            f" WHERE id IN ({', '.join('?' * len(chunk))}) AND status IN ('pending', 'running')",
            [note, *chunk],
        )
    return len(gone)


STEP_RULE = """
UPDATE steps SET legacy_status = COALESCE(legacy_status, status), status = CASE
    WHEN EXISTS (SELECT 1 FROM steps later WHERE later.execution_id = steps.execution_id
                 AND later.step_index > steps.step_index) THEN 'completed'
    WHEN (SELECT status FROM executions e WHERE e.id = steps.execution_id) = 'completed' THEN 'completed'
    ELSE 'failed' END
WHERE status IN ('running', 'pending')
  AND (SELECT e.status FROM executions e WHERE e.id = steps.execution_id AND e.pid IS NULL)
      NOT IN ('running', 'pending')
"""


def settle_steps(conn: apsw.Connection, *, only: str | None = None, rowids: tuple[int, int] | None = None) -> int:
    """Inside a write transaction: steps left `running` in finished legacy runs (of run `only`,
    or with a rowid in `rowids`, if given); how many changed."""
    if only is not None:
        conn.execute(STEP_RULE + " AND execution_id = ?", (only,))
    elif rowids is not None:
        conn.execute(STEP_RULE + " AND rowid BETWEEN ? AND ?", rowids)
    else:
        conn.execute(STEP_RULE)
    return int(conn.changes())


def stale_runs(conn: apsw.Connection, db: Path) -> int:
    """How many open legacy rows nothing can finish (abandon_open_runs's rule, without the
    steps' times). 0 for a store that did not come from StepFlow Monitor. Read-only."""
    from stepflow.store import schema
    from stepflow.store.zone import LEGACY_TZ_KEY, parse_zone

    name = schema.meta(conn, LEGACY_TZ_KEY)
    if name is None:
        return 0
    rows: list[Any] = conn.execute(
        "SELECT created_at, started_at FROM executions WHERE status IN ('pending', 'running') AND pid IS NULL"
    ).fetchall()
    if not rows or holders([db, db.with_name(db.name + "-wal")], db.parent.parent):
        return 0
    legacy_zone, now = parse_zone(name), time.time()
    count = 0
    for times in rows:
        stamps = [t for t in (epoch(str(x), legacy_zone) for x in times if x) if t is not None]
        count += not stamps or now - max(stamps) >= LEGACY_GRACE
    return count


def unsettled_steps(conn: apsw.Connection) -> bool:
    """Whether a finished legacy run still shows a step running (an old server finished it
    after the migration). Read-only."""
    row = conn.execute(
        "SELECT 1 FROM steps WHERE status IN ('running', 'pending') AND (SELECT e.status FROM executions e"
        " WHERE e.id = steps.execution_id AND e.pid IS NULL) NOT IN ('running', 'pending') LIMIT 1").fetchall()
    return bool(row)

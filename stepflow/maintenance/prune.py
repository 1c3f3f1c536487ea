"""`stepflow prune`: delete old runs with their steps, log lines and artifact files.

Runs go in batches through the store's `delete_runs` (SQLite: each batch in its own short
IMMEDIATE transaction, so runs recording meanwhile wait for milliseconds, not for the whole
prune). Files are deleted only once the
rows are gone, and only inside the store (`artifacts/<id>/`, legacy `executions/<id>/`):
an artifact path pointing elsewhere is the user's file and is never touched.
Runs still `running` or `pending` are never deleted, whatever their age.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from stepflow.config import Settings
from stepflow.errors import UsageError
from stepflow.maintenance import fs, probe
from stepflow.maintenance.legacy import EXECUTIONS_FOLDER
from stepflow.record import record
from stepflow.store import open_store
from stepflow.store.base import OPEN_STATUSES, RUN_STATUSES, RunQuery, Store

BATCH = 500


@record
class PruneResult:
    cutoff: float
    status: str | None
    dry_run: bool
    runs: int = 0
    steps: int = 0
    artifacts: int = 0
    log_lines: int = 0
    file_bytes: int = 0
    database_bytes: int = 0  # pages freed inside the database file (SQLite reuses them)
    kept_live: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        when = datetime.fromtimestamp(self.cutoff).astimezone().isoformat(timespec="seconds")
        which = f"{self.status} runs" if self.status else "runs"
        verb = "would delete" if self.dry_run else "deleted"
        out = [f"{'dry run: ' if self.dry_run else ''}{verb} {fs.plural(self.runs, 'run')} ({which} created"
               f" before {when}) with {fs.plural(self.steps, 'step')}, {fs.plural(self.log_lines, 'log line')},"
               f" {fs.plural(self.artifacts, 'artifact')}"]
        if self.dry_run:
            out.append(f"would free {fs.human_size(self.file_bytes)} of files")
        else:
            out.append(f"freed {fs.human_size(self.file_bytes)} of files and {fs.human_size(self.database_bytes)}"
                       " inside the database (reused for new runs)")
        if self.kept_live:
            out.append(f"kept {fs.plural(self.kept_live, 'old run')} still running or pending")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"cutoff": datetime.fromtimestamp(self.cutoff).astimezone().isoformat(), "status": self.status,
                "dry_run": self.dry_run, "runs": self.runs, "steps": self.steps, "artifacts": self.artifacts,
                "log_lines": self.log_lines, "file_bytes": self.file_bytes,
                "database_bytes": self.database_bytes, "kept_live": self.kept_live,
                "seconds": round(self.seconds, 3)}


def run_folders(settings: Settings, run_id: str) -> list[Path]:
    """The folders inside the store that belong to one run (only for ids that are safe path names)."""
    if not run_id or run_id in (".", "..") or "/" in run_id or "\\" in run_id or "\0" in run_id:
        return []
    return [settings.artifacts / run_id, settings.storage / EXECUTIONS_FOLDER / run_id]


def prune(
    settings: Settings, *, cutoff: float, status: str | None = None, dry_run: bool = False, batch: int = BATCH
) -> PruneResult:
    """Delete runs created before `cutoff` (epoch seconds), optionally only those with `status`.

    Raises:
        UsageError: `status` is unknown, or running/pending (never pruned).
        StoreError: no store, a legacy store, or it cannot be written.
    """
    if status is not None and status not in RUN_STATUSES:
        raise UsageError(f"--status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    if status in OPEN_STATUSES:
        raise UsageError(f"--status {status}: runs still running or pending are never pruned")
    started = time.monotonic()
    if settings.database_url.path is not None:
        probe.require(settings.database)
    result = PruneResult(cutoff, status, dry_run)
    store = open_store(settings)
    try:
        result.kept_live = sum(
            1 for open_status in OPEN_STATUSES for run in store.find_runs(RunQuery(status=open_status))
            if run.created_ts is not None and run.created_ts < cutoff
        )
        for done in store.delete_runs(before_ts=cutoff, status=status, dry_run=dry_run, batch=batch):
            result.runs += done.runs
            result.steps += done.steps
            result.artifacts += done.artifacts
            result.log_lines += done.log_lines
            result.database_bytes += done.freed_bytes
            for run_id in done.run_ids:  # files go only once their rows are gone
                for folder in run_folders(settings, run_id):
                    result.file_bytes += fs.tree_size(folder)
                    if not dry_run:
                        shutil.rmtree(folder, ignore_errors=True)
        if not dry_run:
            result.file_bytes += remove_orphans(settings, store)
    finally:
        store.close()
    result.seconds = time.monotonic() - started
    return result


ORPHAN_AGE = 3600.0  # a folder this old with no run row: a prune killed between rows and files


def remove_orphans(settings: Settings, store: Store, *, now: float | None = None) -> int:
    """Run folders (`artifacts/<id>/`, `executions/<id>/`) whose run is gone; bytes freed.

    What a prune killed after deleting a batch's rows leaves: the next prune removes it. A
    folder younger than ORPHAN_AGE is left alone (its run may be being recorded right now).
    """
    now = time.time() if now is None else now
    freed = 0
    for name in ("artifacts", EXECUTIONS_FOLDER):
        root = settings.storage / name
        try:
            entries = [e for e in root.iterdir() if e.is_dir() and not e.is_symlink()]
        except OSError:
            continue
        for entry in entries:
            try:
                young = now - entry.stat().st_mtime < ORPHAN_AGE
            except OSError:
                continue
            if young or store.get_run(entry.name) is not None:
                continue
            freed += fs.tree_size(entry)
            shutil.rmtree(entry, ignore_errors=True)
    return freed

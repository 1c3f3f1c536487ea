"""`stepflow db copy`: move a history between stores (SQLite and PostgreSQL, either way), idempotently.

Runs go across in batches (500 by default), each read in one snapshot of the source and
written in one transaction of the target with all it owns: its row in `executions`, its
steps, artifacts, output blocks and spooled-batch records, values exactly as stored. A run the
target has is not written again, so a second copy adds nothing, and a copy killed at any moment
leaves whole runs only: running it again finishes it. Before each batch commits, the rows of
every run in it are counted at both ends (steps, artifacts, output blocks and lines); any
difference rolls the batch back and stops the copy.

A run still open at the source (`running`, `pending`) is copied as far as it has got. Once it
has finished there, copying again replaces the target's copy if that is still open or was
marked `abandoned` meanwhile (its process gone from the target's point of view). A run open at
both ends is left as the target has it: the target may be where it is being written.

Artifact files stay where they are: the rows name them as before. The zone `migrate` recorded
for StepFlow Monitor's naive times goes to a SQLite target that has none; PostgreSQL keeps no
zone, so its readers read such times in their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from stepflow.errors import StoreError, UsageError
from stepflow.maintenance.copy_ends import NO_ROWS, TABLES, Counts, End, end_of
from stepflow.record import field, record
from stepflow.store import OPEN_STATUSES, DatabaseURL, open_store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from stepflow.config import Settings

BATCH = 500
# A target's copy of a run that a finished source run brings up to date: still open, or judged
# abandoned (its process gone, seen from a host that ran it) while the source went on.
REPLACEABLE = (*OPEN_STATUSES, "abandoned")


class CopyMismatchError(StoreError):
    """After a batch was written, the target's rows do not match the source's."""


@record
class CopyReport:
    """What a copy did. `runs` were written now (new, or replacing an open copy), `already`
    were there as they are at the source; the row counts are of the runs written now."""

    source: str
    target: str
    runs: int = 0
    replaced: int = 0  # among `runs`: an open copy replaced by the finished run
    already: int = 0
    still_open: int = 0  # runs open at the source: copied as far as they had got
    steps: int = 0
    log_lines: int = 0
    artifacts: int = 0
    blocks: int = 0
    batches: int = 0
    zone_kept: bool = False  # the source's zone of StepFlow Monitor's naive times recorded at the target
    mismatched: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        line = (f"copied {self.runs:,} runs ({self.steps:,} steps, {self.log_lines:,} lines,"
                f" {self.artifacts:,} artifacts) from {self.source} to {self.target}; {self.already:,} already there")
        if self.replaced:
            line += f", {self.replaced:,} brought up to date (finished since the last copy)"
        if self.still_open:
            line += f"; {self.still_open:,} still running at the source: copy again once they finish"
        return [line]

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "target": self.target, "runs": self.runs, "replaced": self.replaced,
                "already_there": self.already, "still_running": self.still_open, "steps": self.steps,
                "lines": self.log_lines, "artifacts": self.artifacts, "log_blocks": self.blocks,
                "batches": self.batches, "legacy_zone_recorded": self.zone_kept}


def store_url(option: str, text: str) -> DatabaseURL:
    """The URL given to `option` (--to, --from) as open_store takes it; a relative path made absolute.

    Raises:
        SettingsError: not a URL a backend takes (the message never shows the password).
    """
    from stepflow.config import checked_url

    return checked_url(f"{option} ", text)


def copy_history(settings: Settings, *, source: DatabaseURL, target: DatabaseURL, batch: int = BATCH,
                 on_batch: Callable[[CopyReport], None] | None = None) -> CopyReport:
    """Copy every run of `source` that `target` lacks, `batch` runs per transaction.

    Writes only to `target` (created if it is a new SQLite file); the source is opened
    read-only. `on_batch` sees the report after each committed batch (progress).

    Raises:
        UsageError: source and target are the same store.
        StoreError: a store cannot be opened, read or written (nothing of the batch at hand
            is kept; batches before it are, whole).
        CopyMismatchError: the rows counted at both ends differ (that batch is rolled back).
    """
    if source.path is not None and not source.path.exists():
        raise StoreError(f"no store at {source.file} to copy from")
    if source.path is not None and target.path is not None and target.path.exists() \
            and os.path.samefile(source.path, target.path):
        raise UsageError(f"sqlite:///{source.file} is both the source and the target; give another store to copy to")
    src = open_store(settings, url=source, readonly=True)
    try:
        dst = open_store(settings, url=target)
        try:
            return _copy(end_of(src), end_of(dst), batch=batch, on_batch=on_batch)
        finally:
            dst.close()
    finally:
        src.close()


def _columns(src: End, dst: End) -> dict[str, list[str]]:
    """Per table, the columns to copy: all the source has; each must exist at the target."""
    chosen = {}
    for table, _ in TABLES:
        have, take = src.columns(table), set(dst.columns(table))
        lost = [c for c in have if c not in take]
        if lost:
            raise StoreError(f"store {dst.label} has no column {table}.{lost[0]} that {src.label} has;"
                             " upgrade stepflow where the target was made, or copy into a new store")
        chosen[table] = have
    return chosen


def _copy(src: End, dst: End, *, batch: int, on_batch: Callable[[CopyReport], None] | None) -> CopyReport:
    if src.identity() == dst.identity():
        raise UsageError(f"{src.label} is both the source and the target; give another store to copy to")
    report = CopyReport(source=src.label, target=dst.label)
    columns = _columns(src, dst)
    after: str | None = None
    while True:
        with src.reading():
            listed = src.next_runs(after, batch)
            if not listed:
                break
            after = listed[-1][0]
            with dst.writing():
                _batch(src, dst, listed, columns, report)
        report.batches += 1
        if on_batch is not None:
            on_batch(report)
    legacy_zone = src.legacy_zone()
    if legacy_zone is not None:
        with dst.writing():
            report.zone_kept = dst.keep_legacy_zone(legacy_zone)
    return report


def _batch(src: End, dst: End, listed: list[tuple[str, str]], columns: dict[str, list[str]],
           report: CopyReport) -> None:
    """One batch, inside the source's snapshot and the target's transaction."""
    there = dst.statuses([run_id for run_id, _ in listed])
    new, replace, checked = [], [], []
    for run_id, status in listed:
        open_here = status in OPEN_STATUSES
        report.still_open += open_here
        theirs = there.get(run_id)
        if theirs is None:
            new.append(run_id)
        elif not open_here and theirs in REPLACEABLE and theirs != status:
            replace.append(run_id)
        else:
            report.already += 1
            if not open_here and theirs not in OPEN_STATUSES:
                checked.append(run_id)  # finished at both ends: must hold the same rows
    written = new + replace
    if replace:
        dst.delete(replace)
    if written:
        for table, _ in TABLES:
            if columns[table]:
                for rows in src.rows(table, columns[table], written):
                    dst.insert(table, columns[table], rows)
    counted = _verify(src, dst, written + checked, report)
    totals = [counted[i] for i in written]
    report.runs += len(written)
    report.replaced += len(replace)
    for counts in totals:
        report.steps += counts[0]
        report.artifacts += counts[1]
        report.blocks += counts[2]
        report.log_lines += counts[3]


NAMES = ("steps", "artifacts", "output blocks", "lines", "spooled batches")


def _verify(src: End, dst: End, ids: list[str], report: CopyReport) -> dict[str, Counts]:
    """The source's rows per run of `ids`, once every run has the same at both ends.

    Raises:
        CopyMismatchError: some run has not (the caller's transaction then rolls back).
    """
    if not ids:
        return {}
    ours, theirs = src.counts(ids), dst.counts(ids)
    wrong = [i for i in ids if i not in theirs or ours.get(i, NO_ROWS) != theirs[i]]
    if not wrong:
        return ours
    report.mismatched = wrong
    first = wrong[0]
    mine: Counts = ours.get(first, NO_ROWS)
    if first not in theirs:
        detail = "missing at the target"
    else:
        there = theirs[first]
        detail = next(f"{name}: {a:,} at the source, {b:,} at the target"
                      for name, a, b in zip(NAMES, mine, there, strict=True) if a != b)
    done = f"{report.runs:,} runs copied before this batch are kept" if report.runs else "nothing was copied"
    raise CopyMismatchError(f"copy to {dst.label} stopped: counts differ for {len(wrong):,} run(s) after writing"
                            f" (run {first}, {detail}); this batch was rolled back, {done}")

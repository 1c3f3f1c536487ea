"""What `stepflow migrate` found and did: the report it prints, and gives as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stepflow.maintenance import fs, probe
from stepflow.record import field, record
from stepflow.store import schema


@record
class MigrationReport:
    """What `migrate` found and did (or, with dry_run, would do)."""

    database: Path
    kind: str
    dry_run: bool = False
    changed: bool = False
    version_before: int = 0
    version_after: int = 0
    journal_before: str = ""
    journal_after: str = ""
    counts_before: dict[str, int] = field(default_factory=dict)
    counts_after: dict[str, int] = field(default_factory=dict)
    migrations: list[str] = field(default_factory=list)
    backup: Path | None = None
    backup_folder: Path | None = None
    log_files: int = 0
    log_lines: int = 0
    log_runs: int = 0
    abandoned: int = 0
    steps_settled: int = 0
    repaired: list[str] = field(default_factory=list)
    resumed: str = ""
    legacy_tz: str | None = None
    chunks: int = 0
    lock_hold_max: float = 0.0  # the longest write transaction of the log import, in seconds
    lock_wait_max: float = 0.0
    was_legacy: bool = False
    holders: list[int] | None = None  # other processes with the store open, looked at before the transaction
    missing_artifacts: int = 0
    integrity: str | None = None
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step, for --json and benchmarks

    def lines(self) -> list[str]:
        what = probe.KIND_NAMES.get(self.kind, self.kind)
        if not self.changed and not self.dry_run:
            return [f"{self.database} is already {what} in WAL mode (schema {self.version_after}): nothing to do"]
        if self.resumed:
            return self._finish_lines()
        counts = ", ".join(f"{n} {t}" for t, n in self.counts_before.items())
        if self.dry_run:
            out = [f"dry run: nothing changed. {self.database} is {what} ({counts})."]
            if not self.migrations and self.journal_before == "wal":
                return [f"{self.database} is already {what} in WAL mode: nothing to do"]
            out.append(f"would back up to {self.backup_folder}/ and verify the copy (integrity_check)")
            if self.migrations:
                out.append(f"would apply {', '.join(self.migrations)} (schema {self.version_before} -> "
                           f"{schema.CURRENT_VERSION}), keeping every legacy row and field")
            if self.journal_before != "wal":
                out.append(f"would switch journal_mode {self.journal_before.upper()} -> WAL")
            if self.log_files:
                out.append(f"would import {fs.plural(self.log_lines, 'log line')} from"
                           f" {fs.plural(self.log_files, 'step log file')} (the files stay as they are)")
            if self.abandoned:
                out.append(f"would mark up to {fs.plural(self.abandoned, 'run')} left pending/running by the old server"
                           " as abandoned (those no live server can finish)")
            if self.missing_artifacts:
                out.append(f"{fs.plural(self.missing_artifacts, 'artifact file')} missing (their paths are kept)")
            return out
        before = ", ".join(f"{t} {self.counts_before.get(t, 0)} -> {self.counts_after.get(t, 0)}"
                           for t in self.counts_after)
        out = [
            f"migrated {self.database} ({what})",
            f"  backup        {self.backup} (integrity ok)",
            f"  rows          {before}",
            f"  journal mode  {self.journal_before} -> {self.journal_after}",
            f"  schema        {self.version_before} -> {self.version_after}"
            + (f" ({', '.join(self.migrations)})" if self.migrations else ""),
        ]
        if self.log_files:
            out.append(f"  logs          {fs.plural(self.log_lines, 'line')} of {fs.plural(self.log_runs, 'run')}"
                       f" imported from {fs.plural(self.log_files, 'step log file')} (files kept)")
        if self.abandoned:
            out.append(f"  abandoned     {fs.plural(self.abandoned, 'run')} no StepFlow Monitor server can finish"
                       " (legacy status kept in legacy_status)")
        if self.steps_settled:
            out.append(f"  steps         {fs.plural(self.steps_settled, 'step')} the old server left running in"
                       " finished runs now completed/failed (legacy status kept)")
        if self.legacy_tz:
            out.append(f"  time zone     naive legacy times are {self.legacy_tz} (--legacy-tz)")
        if self.missing_artifacts:
            out.append(f"  artifacts     {fs.plural(self.missing_artifacts, 'file')} missing (paths kept)")
        out.append(f"  integrity     {self.integrity}")
        out.append(f"  took          {self.seconds:.2f} s; undo with: stepflow rollback --backup {self.backup}")
        return out

    def _finish_lines(self) -> list[str]:
        what = {"resume": "finished the interrupted log import of", "repair": "repaired the schema of"}.get(
            self.resumed, "caught up with the StepFlow Monitor server still writing to")
        out = [f"{what} {self.database}"]
        if self.repaired:
            out.append(f"  columns       added {', '.join(self.repaired)}")
        if self.log_runs or self.resumed == "resume":
            out.append(f"  logs          {fs.plural(self.log_lines, 'line')} of {fs.plural(self.log_runs, 'run')}"
                       " imported")
        if self.abandoned or self.steps_settled:
            out.append(f"  statuses      {fs.plural(self.abandoned, 'run')} abandoned,"
                       f" {fs.plural(self.steps_settled, 'step')} settled (legacy status kept)")
        out.append(f"  integrity     {self.integrity}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": str(self.database), "kind": self.kind, "dry_run": self.dry_run,
            "changed": self.changed, "schema_version_before": self.version_before,
            "schema_version_after": self.version_after, "journal_mode_before": self.journal_before,
            "journal_mode_after": self.journal_after, "counts_before": self.counts_before,
            "counts_after": self.counts_after, "migrations": self.migrations,
            "backup": str(self.backup) if self.backup else None,
            "log_files": self.log_files, "log_lines": self.log_lines, "abandoned": self.abandoned,
            "missing_artifacts": self.missing_artifacts, "integrity": self.integrity,
            "seconds": round(self.seconds, 3), "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "log_runs": self.log_runs, "steps_settled": self.steps_settled, "repaired": self.repaired,
            "resumed": self.resumed or None, "legacy_tz": self.legacy_tz, "import_chunks": self.chunks,
            "lock_hold_max": round(self.lock_hold_max, 4), "lock_wait_max": round(self.lock_wait_max, 4),
        }

"""`stepflow health`: one answer a cron job or a Kubernetes probe can act on. Read-only.

Healthy means: the store opens and reads, it is a current stepflow store in WAL mode, the WAL
is not oversized (checkpoints keep up), quick_check passes, no run is left `running` by a
process that is gone, and the disk holding it has room.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import apsw

from stepflow.config import Settings, this_host
from stepflow.errors import StepflowError
from stepflow.history.abandoned import is_abandoned
from stepflow.maintenance import fs, legacy_status, probe, stats
from stepflow.record import field, record, replace
from stepflow.store import open_store, schema
from stepflow.store.base import OPEN_STATUSES, RunQuery, Store
from stepflow.store.connection import describe, intent_path
from stepflow.store.sqlite import SqliteStore

DEFAULT_MAX_WAL = 256 * 1024 * 1024
DEFAULT_MIN_FREE = 512 * 1024 * 1024
BUSY_MS = 5000  # a probe must answer; a store locked for longer is itself a finding
SHOWN_IDS = 5


@record
class HealthReport:
    database: Path | str  # a file, or a server's URL with its password masked
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    checked_at: float = field(default_factory=time.time)

    @property
    def healthy(self) -> bool:
        return not self.reasons

    def lines(self) -> list[str]:
        if self.healthy:
            c = self.checks
            if c.get("backend") == "postgresql":
                return [f"healthy: {self.database} (PostgreSQL {c.get('server_version')}, schema"
                        f" {c.get('schema_version')}, integrity {c.get('integrity', 'not checked')},"
                        f" {fs.human_size(c.get('free_bytes', 0))} free for artifacts)"]
            return [f"healthy: {self.database} (journal mode {c.get('journal_mode')}, WAL"
                    f" {fs.human_size(c.get('wal_bytes', 0))}, integrity {c.get('integrity')},"
                    f" {fs.human_size(c.get('free_bytes', 0))} free)"]
        return [f"unhealthy: {self.database}", *(f"  - {r}" for r in self.reasons)]

    def to_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "database": str(self.database), "reasons": self.reasons,
                "checked_at": datetime.fromtimestamp(self.checked_at).astimezone().isoformat(),
                "checks": self.checks}


def health(
    settings: Settings, *, max_wal: int = DEFAULT_MAX_WAL, min_free: int = DEFAULT_MIN_FREE, integrity: bool = True
) -> HealthReport:
    """Check the store; every problem found is one reason. Never raises for a store problem."""
    served = settings.database_url.path is None  # on a server (PostgreSQL): no file, no WAL
    db = settings.database
    report = HealthReport(str(settings.database_url) if served else db)
    free = fs.free_bytes(settings.storage)  # artifacts stay on each host, beside a server store too
    report.checks["free_bytes"] = free
    if free < min_free:
        report.reasons.append(f"low disk: {fs.human_size(free)} free for {settings.storage},"
                              f" under {fs.human_size(min_free)}")
    if served:
        _served(settings, report, integrity=integrity)
        return report
    unfinished = unfinished_upkeep(db)
    if unfinished:
        report.reasons.append(unfinished)
    if not db.exists():
        report.reasons.append(f"store unreadable: no database at {db}")
        return report
    quick = replace(settings, busy_timeout_ms=min(BUSY_MS, settings.busy_timeout_ms))
    try:
        with probe.existing(quick, readonly=True) as conn:
            found = probe.probe(conn, db)  # SQLite by nature: what kind of file this is
            report.reasons += _migration_reasons(conn, db, found)
            if found.kind not in (probe.CURRENT, probe.OLDER):  # not a store to open: its file's facts
                _inspect(SqliteStore(conn, db), found, report, max_wal=max_wal, integrity=integrity)
                return report
        store = open_store(quick, readonly=True)
        try:
            _inspect(store, found, report, max_wal=max_wal, integrity=integrity)
        finally:
            store.close()
    except (apsw.Error, StepflowError) as exc:
        reason = describe(exc) if isinstance(exc, apsw.Error) else str(exc)
        report.reasons.append(f"store unreadable: {reason}")
    return report


def _served(settings: Settings, report: HealthReport, *, integrity: bool) -> None:
    """A server-backed store: its own facts and problems (Store.health), then abandoned runs."""
    try:
        store = open_store(settings, readonly=True)
        try:
            facts = store.health(integrity=integrity)
            report.checks.update(facts.checks)
            report.reasons += facts.problems
            _abandoned(store, report)
        finally:
            store.close()
    except StepflowError as exc:
        report.reasons.append(f"store unreadable: {exc}")


def _abandoned(store: Store, report: HealthReport) -> None:
    gone = abandoned_runs(store)
    report.checks["abandoned_runs"] = gone
    if gone:
        shown = ", ".join(i[:8] for i in gone[:SHOWN_IDS]) + (" ..." if len(gone) > SHOWN_IDS else "")
        report.reasons.append(f"{fs.plural(len(gone), 'run')} left running by a process that is gone: {shown}")


def _inspect(store: Store, found: probe.Probe, report: HealthReport, *, max_wal: int, integrity: bool) -> None:
    """The kind of store, then the backend's own facts (Store.health), the WAL's size, abandoned runs."""
    checks = report.checks
    checks.update(kind=found.kind, schema_version=found.version, journal_mode=found.journal_mode)
    if found.kind == probe.LEGACY:
        report.reasons.append("a StepFlow Monitor store: run \"stepflow migrate --to-wal\"")
    elif found.kind == probe.NEWER:
        report.reasons.append(f"schema version {found.version} is newer than this stepflow knows: upgrade stepflow")
    facts = store.health(integrity=integrity)
    checks.update(facts.checks)
    checks.pop("backend", None)
    report.reasons += facts.problems
    wal = int(checks.get("wal_bytes", 0))
    if wal > max_wal:
        from stepflow.store.sqlite.holders import wal_readers

        readers = wal_readers(Path(report.database))
        checks["wal_readers"] = [{"pid": h.pid, "command": h.command} for h in readers]
        why = (f"{', '.join(str(h) for h in readers[:3])} holds a read transaction that pins it" if readers
               else "a long reader?")
        report.reasons.append(f"WAL is {fs.human_size(wal)}, over {fs.human_size(max_wal)}: checkpoints do not keep"
                              f" up ({why}); run \"stepflow checkpoint --mode truncate\"")
    if found.kind in (probe.CURRENT, probe.OLDER):
        _abandoned(store, report)


def _migration_reasons(conn: apsw.Connection, db: Path, found: probe.Probe) -> list[str]:
    """What a StepFlow Monitor store's migration left to do: columns a release lacked, legacy runs
    an old server that is gone left open, a log import that was interrupted. Read-only."""
    reasons = []
    incomplete = stats.schema_problem(conn)
    if incomplete:
        reasons.append(incomplete)
    stale = legacy_status.stale_runs(conn, db)
    if stale:
        reasons.append(f"{fs.plural(stale, 'legacy run')} left pending/running by a StepFlow Monitor server"
                       " that is gone: run \"stepflow migrate --to-wal\" to mark them abandoned")
    if found.kind == probe.CURRENT and schema.meta(conn, "legacy_import") == "pending":
        reasons.append("the migration's log import was interrupted: run \"stepflow migrate --to-wal\""
                       " again to finish it")
    return reasons


def unfinished_upkeep(db: Path) -> str | None:
    """A `rollback --backup` that was killed half-way, said with how to finish it. Read-only."""
    if intent_path(db).exists():
        return (f"a \"stepflow rollback --backup\" was interrupted ({intent_path(db)} is there): run it again"
                " to finish it")
    return None


def abandoned_runs(store: Store) -> list[str]:
    """Ids of runs still `running`/`pending` that nothing can finish (stepflow.history.abandoned's rule).

    A run's stepflow process is gone (pid + start time, on this host), or a legacy row says
    running with no pid at all.
    """
    host = this_host()
    return [run.id for status in OPEN_STATUSES for run in store.find_runs(RunQuery(status=status))
            if is_abandoned(run, host=host)]

"""`stepflow migrate --to-wal`: bring a StepFlow Monitor store, or an older stepflow store, to
the current schema in WAL mode, with other processes reading and writing all along.

Order, so that every failure leaves the store as it was:
  1. refuse a network filesystem; recognise the store (current + WAL: nothing to do);
  2. take the maintenance lock (new stepflow processes wait for it, then go on);
  3. back up in one step, fsync, verify with integrity_check (nothing has changed yet);
  4. meanwhile, stage the legacy step log files in a scratch database (nothing changed);
  5. switch to WAL in short attempts (the only change so far, and undone on failure);
  6. one IMMEDIATE transaction: the migrations, `running` -> `abandoned`, the log import,
     the row counts compared before and after; any error rolls all of it back;
  7. release the lock, then quick_check, with a PASSIVE checkpoint beside it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

import apsw

from stepflow import procs
from stepflow.config import Settings
from stepflow.errors import StepflowError, StoreError, UsageError
from stepflow.maintenance import backup, fs, legacy, legacy_status, probe
from stepflow.maintenance import modes as fs_modes
from stepflow.maintenance.journal import switch_journal_mode
from stepflow.maintenance.lock import describe_holders, maintenance_lock
from stepflow.store import schema, zone
from stepflow.store.connection import describe, immediate, scalar, store_error

MIGRATION_CACHE_KIB = 256 * 1024  # the UPDATE of every run row goes twice as fast with room
CHUNK_SECONDS = 0.2  # aim for log-import transactions this long: writers wait at most about this


@dataclass(slots=True)
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
        what = "finished the interrupted log import of" if self.resumed == "resume" else "repaired the schema of"
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


def pending_migrations(version: int) -> list[str]:
    return [m.__name__ for n, m in enumerate(schema.MIGRATIONS, start=1) if n > version]


def check_folder(folder: Path, needed: int) -> None:
    """For --dry-run: would `prepare_folder` succeed? Creates nothing."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write backups to {folder}; choose another folder with --backup-dir")
    free = fs.free_bytes(existing)
    if free < needed * backup.SPACE_MARGIN:
        raise StoreError(f"not enough space in {folder} for a backup: {fs.human_size(needed)} needed,"
                         f" {fs.human_size(free)} free; choose another folder with --backup-dir")


def migrate(
    settings: Settings, *, backup_dir: Path | None = None, dry_run: bool = False, wait: float = 10.0,
    legacy_tz: str | None = None, chunk_seconds: float = CHUNK_SECONDS,
) -> MigrationReport:
    """Bring the store to the current schema in WAL mode; see the module docstring.

    Raises:
        StoreError: network filesystem, unwritable backup folder, damaged store or backup, lock
            held too long, a failure during the migration. The store is then as it was.
    """
    started = time.monotonic()
    db = settings.database
    zone_name = legacy_tz or zone.host_zone_name()
    try:
        legacy_zone = zone.parse_zone(zone_name)
    except ValueError as exc:
        raise UsageError(f"--legacy-tz: {exc}") from None
    with _unchanged():
        probe.require(db)
        network = fs.network_filesystem(db)
        if network:
            raise StoreError(
                f"{db} is on a network filesystem ({network}); WAL needs shared memory on one host:"
                " keep the store on a local disk (--storage)"
            )
        folder = (backup_dir or backup.default_folder(settings)).absolute()
        needed = fs.file_size(db) + fs.file_size(db.with_name(db.name + "-wal"))
        if dry_run:
            return _dry_run(settings, folder, needed, started)
    remove_leftovers(db)
    staging = db.with_name(f"{STAGING_PREFIX.format(name=db.name)}{os.getpid()}")
    with contextlib.ExitStack() as stack:
        stack.callback(_remove, staging)  # last, once the threads below have ended
        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(max_workers=2))
        with _unchanged():
            conn = stack.enter_context(probe.existing(settings))
            found = _probe(conn, db)
            if _work(conn, found) is None:
                return _nothing_to_do(conn, db, found, started)
        # From here stepflow processes that open the store wait: a run started meanwhile is
        # recorded into the migrated store, never refused as a legacy one.
        with _unchanged(), maintenance_lock(db, what="migrate", wait=wait):
            found = _probe(conn, db)  # again: another migrate may have finished meanwhile
            work = _work(conn, found)
            if work is None:
                return _nothing_to_do(conn, db, found, started)
            if work != MIGRATE:
                return _finish(conn, settings, found, work, pool, stack, staging, started,
                               chunk_seconds=chunk_seconds)
            backup.prepare_folder(folder, needed, hint="choose another folder with --backup-dir")
            conn.execute(f"PRAGMA cache_size=-{MIGRATION_CACHE_KIB}")
            report = MigrationReport(db, found.kind, version_before=found.version,
                                     journal_before=found.journal_mode, backup_folder=folder)
            dest = backup.unique_path(folder, backup.backup_name("pre-migrate"))
            paths = [str(r[0] or "") for r in conn.execute("SELECT file_path FROM artifacts")] if (
                schema.has_table(conn, "artifacts")) else []
            # Neither needs the database: both are done while the backup is copied and verified.
            missing = pool.submit(legacy.count_missing, paths, settings.storage)
            staged = pool.submit(_stage_logs, settings, found, staging, legacy_zone)
            copy = backup.take(conn, db, dest)
            report.backup = copy.path
            report.phases.update(backup_copy=copy.copy_seconds, backup_verify=copy.seconds - copy.copy_seconds)
            with _unchanged(f" (backup kept at {report.backup})"):
                with _phase(report, "stage_logs_wait"):
                    scan = staged.result()
                report.log_files = scan.files
                _change(conn, settings, found, report, scan.files > 0, zone_name, legacy_zone, wait=wait)
        fs_modes.private(settings)
        # The lock is released: runs record and readers read while the logs come across in
        # short transactions, each a whole number of runs.
        if report.was_legacy or scan.files:
            _rest(conn, settings, report, staging if scan.files else None, legacy_zone, chunk_seconds=chunk_seconds)
        with _phase(report, "check_after"):
            _after(conn, settings, report, pool)
        report.missing_artifacts = missing.result()
    report.changed = True
    report.seconds = time.monotonic() - started
    return report


UNCHANGED = "; nothing changed"
AGAIN = "run \"stepflow migrate --to-wal\" again"  # the store changed: a rerun finishes the job


@contextlib.contextmanager
def _phase(report: MigrationReport, name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        report.phases[name] = time.monotonic() - started


@contextlib.contextmanager
def _unchanged(extra: str = "") -> Iterator[None]:
    """Errors raised inside end with "; nothing changed": the store is as it was."""
    try:
        yield
    except StoreError as exc:
        if UNCHANGED in str(exc) or AGAIN in str(exc):
            raise
        raise type(exc)(f"{exc}{UNCHANGED}{extra}") from exc
    except apsw.Error as exc:
        raise StoreError(f"{describe(exc)}{UNCHANGED}{extra}") from exc


def _probe(conn: apsw.Connection, db: Path) -> probe.Probe:
    found = probe.probe(conn, db)
    if found.kind == probe.NEWER:
        raise StoreError(
            f"{db} has schema version {found.version}, newer than this stepflow knows"
            f" ({schema.CURRENT_VERSION}); upgrade stepflow"
        )
    return found


def _nothing_to_do(conn: apsw.Connection, db: Path, found: probe.Probe, started: float) -> MigrationReport:
    counts = probe.counts(conn)
    return MigrationReport(db, found.kind, version_before=found.version, version_after=found.version,
                           journal_before="wal", journal_after="wal", counts_before=counts,
                           counts_after=counts, seconds=time.monotonic() - started)


def _dry_run(settings: Settings, folder: Path, needed: int, started: float) -> MigrationReport:
    db = settings.database
    with probe.existing(settings, readonly=True) as conn:
        found = _probe(conn, db)
        report = MigrationReport(db, found.kind, dry_run=True, version_before=found.version,
                                 version_after=found.version, journal_before=found.journal_mode,
                                 journal_after=found.journal_mode, backup_folder=folder)
        report.counts_before = report.counts_after = probe.counts(conn)
        report.migrations = pending_migrations(found.version)
        if found.kind == probe.CURRENT and found.journal_mode == "wal":
            return report
        check_folder(folder, needed)
        scan = legacy.scan_logs(settings.storage)
        report.log_files, report.log_lines = scan.files, scan.lines
        if found.kind == probe.LEGACY:
            report.abandoned = int(scalar(
                conn, "SELECT COUNT(*) FROM executions WHERE status IN ('running', 'pending')"))
        if schema.has_table(conn, "artifacts"):
            report.missing_artifacts = legacy.missing_artifacts(conn, settings.storage)
    report.seconds = time.monotonic() - started
    return report


def _stage_logs(settings: Settings, found: probe.Probe, staging: Path, legacy_zone: tzinfo) -> legacy.LogScan:
    """Step 4: parse the legacy step log files into a scratch database (the store is not touched)."""
    if found.kind == probe.CURRENT or not (settings.storage / legacy.EXECUTIONS_FOLDER).is_dir():
        return legacy.LogScan()
    try:
        return legacy.stage_logs(settings.storage, staging, max_line=settings.max_line, zone=legacy_zone)
    except (apsw.Error, OSError) as exc:
        raise StoreError(f"reading the legacy step logs failed: {exc}") from exc


def _remove(staging: Path) -> None:
    for path in (staging, staging.with_name(staging.name + "-journal")):
        with contextlib.suppress(OSError):
            path.unlink()


def _change(conn: apsw.Connection, settings: Settings, found: probe.Probe, report: MigrationReport,
            has_logs: bool, zone_name: str, legacy_zone: tzinfo, *, wait: float) -> None:
    """Steps 5-6 under the maintenance lock: switch to WAL, migrate in one transaction."""
    db = settings.database
    switched = False
    if found.journal_mode != "wal":
        try:
            with _phase(report, "switch_to_wal"):
                switch_journal_mode(conn, "wal", db, wait=wait, busy_ms=settings.busy_timeout_ms)
        except StoreError as exc:
            raise StoreError(f"{exc} ({describe_holders(db)})") from exc
        switched = True
    report.holders = legacy_status.holders([db, db.with_name(db.name + "-wal")], settings.storage)
    try:
        with _phase(report, "transaction"):
            _transaction(conn, settings, report, has_logs, zone_name, legacy_zone)
    except BaseException:
        if switched:
            with contextlib.suppress(StepflowError):
                switch_journal_mode(conn, found.journal_mode, db, wait=wait, busy_ms=settings.busy_timeout_ms)
        raise
    report.journal_after = str(scalar(conn, "PRAGMA journal_mode"))


def _transaction(conn: apsw.Connection, settings: Settings, report: MigrationReport, has_logs: bool,
                 zone_name: str, legacy_zone: tzinfo) -> None:
    """Step 6: every schema change and status in one IMMEDIATE transaction, or nothing.

    The log lines come afterwards, in short transactions (see _import); until they are all
    in, `stepflow_meta` says so, `health` says unhealthy and `migrate` finishes the job.
    """
    db = settings.database
    # The commit would checkpoint the whole migration's WAL itself; _after does it beside quick_check.
    autocheckpoint = int(scalar(conn, "PRAGMA wal_autocheckpoint"))
    conn.execute("PRAGMA wal_autocheckpoint=0").fetchall()
    try:
        with immediate(conn):
            before = probe.counts(conn)
            version = schema.user_version(conn)
            was_legacy = report.was_legacy = version == 0 and schema.has_table(conn, "executions")
            token = schema.DEFER_CREATED_TS.set(was_legacy)  # _rest fills it, in short transactions
            try:
                for number, migration in enumerate(schema.MIGRATIONS, start=1):
                    if number > version:
                        migration(conn)
                        report.migrations.append(migration.__name__)
            finally:
                schema.DEFER_CREATED_TS.reset(token)
            report.repaired = schema.add_missing_legacy_columns(conn)
            conn.execute(f"PRAGMA user_version={schema.CURRENT_VERSION}")
            if was_legacy:
                schema.set_meta(conn, zone.LEGACY_TZ_KEY, zone_name)
                report.legacy_tz = zone_name
            _settle(conn, settings, report)
            if was_legacy or has_logs:
                schema.set_meta(conn, IMPORT_KEY, "pending")
            after = probe.counts(conn)
            if after != before:
                raise StoreError(f"row counts changed during the migration ({before} -> {after})")
            report.counts_before, report.counts_after = before, after
            report.version_after = schema.CURRENT_VERSION
    except apsw.Error as exc:
        raise store_error(exc, db) from exc
    finally:
        conn.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}").fetchall()


def _rest(conn: apsw.Connection, settings: Settings, report: MigrationReport, staging: Path | None,
          legacy_zone: tzinfo, *, chunk_seconds: float) -> None:
    """After the schema transaction, with the lock released: created_ts in the legacy zone,
    then the staged log lines, each in short transactions; then the `pending` mark goes."""
    with _phase(report, "fill_times"):
        _fill_times(conn, settings, report, legacy_zone, chunk_seconds=chunk_seconds)
    if staging is not None:
        with _phase(report, "import_logs"):
            _import(conn, settings, report, staging, chunk_seconds=chunk_seconds)
    with immediate(conn):
        conn.execute("DELETE FROM stepflow_meta WHERE key = ?", (IMPORT_KEY,))


def _fill_times(conn: apsw.Connection, settings: Settings, report: MigrationReport, legacy_zone: tzinfo, *,
                chunk_seconds: float) -> None:
    """created_ts of the legacy rows, read in the recorded zone, a range of rowids at a time."""
    def legacy_epoch(text: Any) -> float | None:
        return zone.epoch(text if isinstance(text, str) else None, legacy_zone)

    conn.create_scalar_function("stepflow_legacy_epoch", legacy_epoch, 1, deterministic=True)  # type: ignore[arg-type]
    bounds: tuple[Any, ...] = conn.execute(
        "SELECT COALESCE(MIN(rowid), 0), COALESCE(MAX(rowid), -1) FROM executions").fetchall()[0]
    low, high = int(bounds[0]), int(bounds[1])
    first, size = low, 2000
    try:
        while first <= high:
            last = first + size - 1
            began = time.monotonic()
            with immediate(conn):
                held = time.monotonic()
                conn.execute("UPDATE executions SET created_ts = stepflow_legacy_epoch(created_at)"
                             " WHERE rowid BETWEEN ? AND ? AND pid IS NULL", (first, last))
            took = time.monotonic() - held
            report.lock_wait_max = max(report.lock_wait_max, held - began)
            report.lock_hold_max = max(report.lock_hold_max, took)
            report.chunks += 1
            first = last + 1
            size = max(100, min(50000, int(size * chunk_seconds / max(took, 1e-3))))
    except apsw.Error as exc:
        raise StoreError(f"{store_error(exc, settings.database)}; the migration is done but not every run's time is"
                         " in yet: run \"stepflow migrate --to-wal\" again to finish it") from exc


def _settle(conn: apsw.Connection, settings: Settings, report: MigrationReport) -> None:
    """Legacy statuses stepflow shows otherwise (stepflow.maintenance.legacy_status)."""
    name = schema.meta(conn, zone.LEGACY_TZ_KEY)
    if name is None:
        return  # not a store that came from StepFlow Monitor
    legacy_zone = zone.parse_zone(name)
    report.abandoned += legacy_status.abandon_open_runs(conn, settings.database, settings.storage, zone=legacy_zone,
                                                        others=report.holders)
    report.steps_settled += legacy_status.settle_steps(conn)


def _import(conn: apsw.Connection, settings: Settings, report: MigrationReport, staging: Path, *,
            chunk_seconds: float, replace: bool = False) -> None:
    """The staged log lines, a whole number of runs per short IMMEDIATE transaction.

    Each chunk is sized so that its transaction holds the write lock about `chunk_seconds`;
    the longest hold is kept in the report. A kill between two chunks leaves whole runs
    imported and the `pending` mark in place: the next migrate imports the rest.
    """
    db = settings.database
    conn.execute("ATTACH DATABASE ? AS staged", (str(staging),))
    try:
        total = legacy.staged_runs(conn)
        first, size = 1, 500
        while first <= total:
            last = min(total, first + size - 1)
            began = time.monotonic()
            with immediate(conn):
                held = time.monotonic()
                runs, lines = legacy.import_chunk(conn, first, last, replace=replace)
            took = time.monotonic() - held
            report.lock_wait_max = max(report.lock_wait_max, held - began)
            report.lock_hold_max = max(report.lock_hold_max, took)
            report.log_runs += runs
            report.log_lines += lines
            report.chunks += 1
            first = last + 1
            size = max(50, min(20000, int(size * chunk_seconds / max(took, 1e-3))))
    except apsw.Error as exc:
        raise StoreError(f"{store_error(exc, db)}; the migration is done but {report.log_runs} runs' logs are in"
                         " so far: run \"stepflow migrate --to-wal\" again to import the rest") from exc
    finally:
        with contextlib.suppress(apsw.Error):
            conn.execute("DETACH DATABASE staged")


def _finish(conn: apsw.Connection, settings: Settings, found: probe.Probe, work: str,
            pool: concurrent.futures.ThreadPoolExecutor, stack: contextlib.ExitStack, staging: Path,
            started: float, *, chunk_seconds: float) -> MigrationReport:
    """A current store that lacks columns, or whose log import a kill interrupted: finish it.

    Nothing is rewritten, so no backup is taken: columns are added, statuses settled, and the
    legacy log lines not yet imported are imported.
    """
    db = settings.database
    report = MigrationReport(db, found.kind, version_before=found.version, journal_before=found.journal_mode,
                             journal_after=found.journal_mode, resumed=work)
    name = schema.meta(conn, zone.LEGACY_TZ_KEY)
    legacy_zone = zone.parse_zone(name) if name else zone.parse_zone(zone.host_zone_name())
    report.holders = legacy_status.holders([db, db.with_name(db.name + "-wal")], settings.storage)
    with immediate(conn):
        report.counts_before = report.counts_after = probe.counts(conn)
        report.repaired = schema.add_missing_legacy_columns(conn)
        _settle(conn, settings, report)
    report.version_after = schema.user_version(conn)
    fs_modes.private(settings)
    if work == RESUME:
        scan = _stage_logs(settings, probe.Probe(probe.LEGACY, 0, "wal"), staging, legacy_zone)
        report.log_files = scan.files
        _rest(conn, settings, report, staging if scan.files else None, legacy_zone, chunk_seconds=chunk_seconds)
    _after(conn, settings, report, pool)
    report.changed = True
    report.seconds = time.monotonic() - started
    return report


MIGRATE, REPAIR, RESUME = "migrate", "repair", "resume"
IMPORT_KEY = "legacy_import"


def _work(conn: apsw.Connection, found: probe.Probe) -> str | None:
    """What the store needs: a migration, a schema repair, the end of a log import, or nothing."""
    if found.kind != probe.CURRENT or found.journal_mode != "wal":
        return MIGRATE
    if schema.meta(conn, IMPORT_KEY) == "pending":
        return RESUME
    if schema.missing_columns(conn):
        return REPAIR
    return None


STAGING_PREFIX = ".{name}-import-"


def remove_leftovers(db: Path) -> list[Path]:
    """Staging files of a migrate that was killed (their pid is gone); the paths removed."""
    removed = []
    prefix = STAGING_PREFIX.format(name=db.name)
    with contextlib.suppress(OSError):
        for entry in os.scandir(db.parent):
            if not entry.name.startswith(prefix):
                continue
            pid = entry.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and procs.is_alive(int(pid), None):
                continue  # another migrate at work right now
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _after(conn: apsw.Connection, settings: Settings, report: MigrationReport,
           pool: concurrent.futures.ThreadPoolExecutor) -> None:
    """Step 7, with the lock released: quick_check, while a PASSIVE checkpoint runs beside it. Read-only."""
    db = settings.database
    checkpoint = pool.submit(_checkpoint, settings)
    try:
        problems = [" ".join(str(r[0]).split()) for r in conn.execute("PRAGMA quick_check").fetchall()]
    except apsw.Error as exc:
        raise store_error(exc, db) from exc
    finally:
        checkpoint.result()
    if problems != ["ok"]:
        raise StoreError(f"migrated {db}, but quick_check found: {problems[0]}; restore the backup with"
                         f" \"stepflow rollback --backup {report.backup}\"")
    report.integrity = "ok"


def _checkpoint(settings: Settings) -> None:
    """Copy the migration's WAL into the database now, rather than in some writer's next commit."""
    with contextlib.suppress(apsw.Error, StepflowError), probe.existing(settings) as conn:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

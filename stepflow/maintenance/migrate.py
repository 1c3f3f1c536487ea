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
from datetime import tzinfo
from pathlib import Path

import apsw

from stepflow import procs
from stepflow.config import Settings
from stepflow.errors import StepflowError, StoreError, UsageError
from stepflow.maintenance import backup, fs, legacy, legacy_status, migrate_chunks, probe
from stepflow.maintenance import modes as fs_modes
from stepflow.maintenance.journal import switch_journal_mode
from stepflow.maintenance.lock import describe_holders, maintenance_lock
from stepflow.maintenance.migrate_report import MigrationReport
from stepflow.store import schema, zone
from stepflow.store.connection import describe, immediate, scalar, store_error, wal_path

MIGRATION_CACHE_KIB = 256 * 1024  # the UPDATE of every run row goes twice as fast with room
CHUNK_SECONDS = 0.2  # aim for log-import transactions this long: writers wait at most about this


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
        needed = fs.file_size(db) + fs.file_size(wal_path(db))
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
        # The log files need no database: they are parsed while the backup is taken and the
        # schema changes, and imported once the lock is released (files the old server
        # rewrites meanwhile are read again when their run is shown: legacy_refresh).
        staged = pool.submit(_stage_logs, settings, found, staging, legacy_zone)
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
            # It needs no database either: done while the backup is copied and verified.
            missing = pool.submit(legacy.count_missing, paths, settings.storage)
            copy = backup.take(conn, db, dest)
            report.backup = copy.path
            report.phases.update(backup_copy=copy.copy_seconds, backup_verify=copy.seconds - copy.copy_seconds)
            with _unchanged(f" (backup kept at {report.backup})"):
                _change(conn, settings, found, report, False, zone_name, legacy_zone, wait=wait)
        fs_modes.private(settings)
        with _phase(report, "stage_logs_wait"):
            try:
                scan = staged.result()
            except StoreError as exc:
                raise StoreError(f"{exc}; the schema is migrated: {AGAIN} to import the logs") from exc
        report.log_files = scan.files
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
    report.holders = legacy_status.holders([db, wal_path(db)], settings.storage)
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
    with _phase(report, "settle_steps"):
        migrate_chunks.settle_steps(conn, settings, report, chunk_seconds=chunk_seconds)
    with _phase(report, "fill_times"):
        migrate_chunks.fill_times(conn, settings, report, legacy_zone, chunk_seconds=chunk_seconds)
    if staging is not None:
        with _phase(report, "import_logs"):
            migrate_chunks.import_logs(conn, settings, report, staging, chunk_seconds=chunk_seconds)
    with immediate(conn):
        conn.execute("DELETE FROM stepflow_meta WHERE key = ?", (IMPORT_KEY,))


def _settle(conn: apsw.Connection, settings: Settings, report: MigrationReport) -> None:
    """Legacy runs nothing can finish become `abandoned` (stepflow.maintenance.legacy_status);
    the steps are settled afterwards, in short transactions (migrate_chunks.settle_steps)."""
    name = schema.meta(conn, zone.LEGACY_TZ_KEY)
    if name is None:
        return  # not a store that came from StepFlow Monitor
    legacy_zone = zone.parse_zone(name)
    report.abandoned += legacy_status.abandon_open_runs(conn, settings.database, settings.storage, zone=legacy_zone,
                                                        others=report.holders)


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
    report.holders = legacy_status.holders([db, wal_path(db)], settings.storage)
    with immediate(conn):
        report.counts_before = report.counts_after = probe.counts(conn)
        report.repaired = schema.add_missing_legacy_columns(conn)
        _settle(conn, settings, report)
    report.version_after = schema.user_version(conn)
    fs_modes.private(settings)
    migrate_chunks.settle_steps(conn, settings, report, chunk_seconds=chunk_seconds)
    if work == RESUME:
        scan = _stage_logs(settings, probe.Probe(probe.LEGACY, 0, "wal"), staging, legacy_zone)
        report.log_files = scan.files
        _rest(conn, settings, report, staging if scan.files else None, legacy_zone, chunk_seconds=chunk_seconds)
    _after(conn, settings, report, pool)
    report.changed = True
    report.seconds = time.monotonic() - started
    return report


MIGRATE, REPAIR, RESUME, CATCH_UP = "migrate", "repair", "resume", "catch-up"
IMPORT_KEY = "legacy_import"


def _work(conn: apsw.Connection, found: probe.Probe) -> str | None:
    """What the store needs: a migration, a schema repair, the end of a log import, or nothing."""
    if found.kind != probe.CURRENT or found.journal_mode != "wal":
        return MIGRATE
    if schema.meta(conn, IMPORT_KEY) == "pending":
        return RESUME
    if schema.missing_columns(conn):
        return REPAIR
    if schema.meta(conn, zone.LEGACY_TZ_KEY) is not None and (
            legacy_status.unsettled_steps(conn) or legacy_status.stale_runs(conn, Path(conn.filename))):
        return CATCH_UP  # an old server went on after the migration
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

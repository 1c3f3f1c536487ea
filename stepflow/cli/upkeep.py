"""Store upkeep: `migrate`, `checkpoint`, `rollback`, `backup`, `db stats|check|optimize|replay|copy`, `health`, `prune`.

Thin commands: the work is in stepflow/maintenance/, imported inside each command so that
`stepflow run` never pays for it at start-up.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer

from stepflow.cli.common import JsonFlag, Storage, app, settings_for
from stepflow.errors import ExitStatus, UsageError

db_app = typer.Typer(name="db", help="Look inside the database: stats, integrity check, optimize; replay the spool; copy runs between stores.",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")

Wait = Annotated[float, typer.Option("--wait", min=0, help="Seconds to keep retrying while other processes hold the database.")]
BackupDir = Annotated[Path | None, typer.Option("--backup-dir", help="Folder for backups (default: <storage>/backups).", show_default=False)]


class Result(Protocol):
    def lines(self) -> list[str]: ...
    def to_dict(self) -> dict[str, Any]: ...


def emit(result: Result, json_out: bool) -> None:
    if json_out:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        print("\n".join(result.lines()))


class CheckpointMode(StrEnum):
    passive = "passive"
    full = "full"
    restart = "restart"
    truncate = "truncate"


@app.command(epilog="Example: stepflow migrate --to-wal --dry-run")
def migrate(
    ctx: typer.Context,
    to_wal: Annotated[bool, typer.Option("--to-wal", help="Bring the store to the current schema in WAL mode.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would happen; change nothing.")] = False,
    backup_dir: BackupDir = None,
    wait: Wait = 10.0,
    legacy_tz: Annotated[str | None, typer.Option(
        "--legacy-tz", metavar="ZONE",
        help="Time zone the StepFlow Monitor server wrote its naive times in (default: this host's).")] = None,
    json_out: JsonFlag = False,
    storage: Storage = None,
) -> None:
    """Bring a StepFlow Monitor or older stepflow store across: backup, schema, WAL; readers and runs go on."""
    from stepflow.maintenance.migrate import migrate as run_migration

    if not to_wal:
        raise UsageError('say what to migrate to: "stepflow migrate --to-wal"')
    emit(run_migration(settings_for(ctx, storage), backup_dir=backup_dir, dry_run=dry_run, wait=wait,
                         legacy_tz=legacy_tz), json_out)


@app.command(epilog="Example: stepflow checkpoint --mode truncate")
def checkpoint(
    ctx: typer.Context,
    mode: Annotated[CheckpointMode, typer.Option("--mode", help="passive never waits; full/restart/truncate wait briefly for readers.")] = CheckpointMode.passive,
    json_out: JsonFlag = False,
    storage: Storage = None,
) -> None:
    """Copy the WAL into the database file; report the WAL size before and after. Exit 1 when busy."""
    from stepflow.maintenance.checkpoint import checkpoint as run_checkpoint

    result = run_checkpoint(settings_for(ctx, storage), mode=mode.value)
    emit(result, json_out)
    if result.busy:
        raise typer.Exit(ExitStatus.ERROR)


@app.command(epilog="Examples: stepflow rollback --journal; stepflow rollback --backup; stepflow rollback --backup FILE")
def rollback(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(metavar="[PATH]", help="With --backup: the backup to restore (default: the latest).", show_default=False)] = None,
    journal: Annotated[bool, typer.Option("--journal", help="Back to journal_mode=DELETE (needs the database to itself).")] = False,
    from_backup: Annotated[bool, typer.Option("--backup", help="Restore a verified backup; the current database is set aside.")] = False,
    backup_dir: BackupDir = None,
    wait: Wait = 10.0,
    json_out: JsonFlag = False,
    storage: Storage = None,
) -> None:
    """Undo: back to a rollback journal, or back to a backup (e.g. the one migrate took)."""
    from stepflow.maintenance import rollback as undo

    if journal == from_backup:
        raise UsageError("say how to roll back: --journal or --backup [PATH]")
    if journal and path is not None:
        raise UsageError(f"{path}: a PATH goes with --backup, not --journal")
    settings = settings_for(ctx, storage)
    if journal:
        emit(undo.to_journal(settings, wait=wait), json_out)
    else:
        emit(undo.to_backup(settings, path, backup_dir=backup_dir, wait=wait), json_out)


@app.command(epilog="Example: stepflow backup /mnt/backups/")
def backup(
    ctx: typer.Context,
    dest: Annotated[Path | None, typer.Argument(metavar="[DEST]", help="A new file, or a folder (default: <storage>/backups).", show_default=False)] = None,
    json_out: JsonFlag = False,
    storage: Storage = None,
) -> None:
    """An online, consistent copy of the database, verified with integrity_check; runs keep writing."""
    from stepflow.maintenance.backup import backup_store

    emit(backup_store(settings_for(ctx, storage), dest), json_out)


@db_app.command("stats")
def db_stats(ctx: typer.Context, json_out: JsonFlag = False, storage: Storage = None) -> None:
    """Files, pages, row counts, schema and SQLite versions, and the settings in force. Read-only."""
    from stepflow.maintenance import stats

    data = stats.stats(settings_for(ctx, storage))
    print(json.dumps(data, ensure_ascii=False, indent=2) if json_out else "\n".join(stats.stats_lines(data)))


@db_app.command("check")
def db_check(ctx: typer.Context, json_out: JsonFlag = False, storage: Storage = None) -> None:
    """PRAGMA integrity_check on the live database (blocks no one). Exit 1 when it finds problems."""
    from stepflow.maintenance import stats

    result = stats.check(settings_for(ctx, storage))
    emit(result, json_out)
    if not result.ok:
        raise typer.Exit(ExitStatus.ERROR)


@db_app.command("replay", epilog="Example: stepflow db replay --wait 30")
def db_replay(
    ctx: typer.Context,
    wait: Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for the write lock per batch.")] = 5.0,
    json_out: JsonFlag = False,
    storage: Storage = None,
) -> None:
    """Write what runs spooled (store busy, full or away) to the store, once. Exit 1 when some stays spooled."""
    from stepflow.cli.report import reading_raw
    from stepflow.store.spool import replay

    settings = settings_for(ctx, storage)
    with reading_raw(settings) as store:
        done = replay(store, settings.spool_folders, wait=wait)
    if json_out:
        print(json.dumps(done.to_dict(), ensure_ascii=False, indent=2))
    else:
        print("\n".join(done.lines_text()))
    if done.waiting:
        raise typer.Exit(ExitStatus.ERROR)


@db_app.command("copy", epilog="Examples: stepflow db copy --to postgresql://stepflow@db.internal/stepflow;"
                               " stepflow db copy --from postgresql://stepflow@db.internal/stepflow")
def db_copy(
    ctx: typer.Context,
    to: Annotated[str | None, typer.Option("--to", metavar="URL", help="Copy this store's runs into URL (a path, sqlite:///PATH or postgresql://...).", show_default=False)] = None,
    from_: Annotated[str | None, typer.Option("--from", metavar="URL", help="Copy the runs of URL into this store.", show_default=False)] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Runs per transaction.")] = 500,
    json_out: JsonFlag = False,
    storage: Storage = None,
) -> None:
    """Copy runs with all they own --to URL from this store, or --from URL into it; a rerun adds nothing."""
    from stepflow.maintenance.copy import copy_history, store_url

    if (to is None) == (from_ is None):
        raise UsageError("say which way to copy: --to URL (from this store) or --from URL (into this store)")
    here = settings_for(ctx, storage)
    there = store_url("--to" if to is not None else "--from", to if to is not None else from_ or "")
    source, target = (here.database_url, there) if to is not None else (there, here.database_url)
    emit(copy_history(here, source=source, target=target, batch=batch), json_out)


@db_app.command("optimize")
def db_optimize(ctx: typer.Context, json_out: JsonFlag = False, storage: Storage = None) -> None:
    """ANALYZE and PRAGMA optimize, so the query planner keeps choosing the indexes."""
    from stepflow.maintenance import stats

    emit(stats.optimize(settings_for(ctx, storage)), json_out)


@app.command(epilog="Example (a Kubernetes probe): stepflow health --json")
def health(
    ctx: typer.Context,
    max_wal: Annotated[str, typer.Option("--max-wal", help="Unhealthy when the WAL is larger (e.g. 256M).")] = "256M",
    min_free: Annotated[str, typer.Option("--min-free", help="Unhealthy when the disk has less free (e.g. 512M).")] = "512M",
    integrity: Annotated[bool, typer.Option("--integrity/--no-integrity", help="Run quick_check (slow on very large stores).")] = True,
    json_out: JsonFlag = False,
    storage: Storage = None,
) -> None:
    """Exit 0 when the store is healthy, 1 with the reasons when not."""
    from stepflow.config import parse_size
    from stepflow.maintenance.health import health as check_health

    report = check_health(settings_for(ctx, storage), max_wal=parse_size("--max-wal", max_wal),
                          min_free=parse_size("--min-free", min_free), integrity=integrity)
    emit(report, json_out)
    if not report.healthy:
        raise typer.Exit(ExitStatus.ERROR)


@app.command(epilog="Example: stepflow prune --older-than 30d --status completed --dry-run")
def prune(
    ctx: typer.Context,
    older_than: Annotated[str, typer.Option("--older-than", help="Runs created before 30d, 12h ago, or a date.", show_default=False)],
    status: Annotated[str | None, typer.Option("--status", help="Only runs with this status.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; delete nothing.")] = False,
    json_out: JsonFlag = False,
    storage: Storage = None,
) -> None:
    """Delete old runs with their steps, log lines and artifact files; never a running one."""
    from stepflow.maintenance.prune import prune as run_prune
    from stepflow.timeparse import since_timestamp

    cutoff = since_timestamp(older_than, option="--older-than") or 0.0  # never None: the option is required
    emit(run_prune(settings_for(ctx, storage), cutoff=cutoff, status=status, dry_run=dry_run), json_out)

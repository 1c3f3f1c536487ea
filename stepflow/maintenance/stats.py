"""`stepflow db stats`, `db check` and `db optimize`: look inside the database, check it, tune it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import apsw

from stepflow.config import Settings
from stepflow.maintenance import backup, fs, probe
from stepflow.record import field, record
from stepflow.store import open_store, schema
from stepflow.store.connection import scalar, store_error

SETTINGS_PRAGMAS = ("busy_timeout", "cache_size", "mmap_size", "wal_autocheckpoint", "journal_size_limit",
                    "synchronous", "temp_store")
SYNCHRONOUS = {0: "off", 1: "normal", 2: "full", 3: "extra"}
MAX_PROBLEMS = 20


def stats(settings: Settings) -> dict[str, Any]:
    """Files, pages, tables, versions and the settings in force, as plain data. Read-only."""
    if settings.database_url.path is None:  # on a server: no file to look at; the store says
        return _served_stats(settings)
    db = settings.database
    with probe.existing(settings, readonly=True) as conn:
        try:
            found = probe.probe(conn, db)
            tables = probe.counts(conn, ("executions", "steps", "artifacts", "logs"))
            if "logs" in tables:
                tables["log_lines"] = int(scalar(conn, "SELECT COALESCE(SUM(line_count), 0) FROM logs"))
            pages = {name: int(probe.pragma(conn, name)) for name in ("page_size", "page_count", "freelist_count")}
            in_force: dict[str, Any] = {name: probe.pragma(conn, name) for name in SETTINGS_PRAGMAS}
        except apsw.Error as exc:
            raise store_error(exc, db) from exc
    in_force["synchronous"] = SYNCHRONOUS.get(in_force["synchronous"], in_force["synchronous"])
    in_force["busy_timeout_ms"] = in_force.pop("busy_timeout")
    folder = backup.default_folder(settings)
    found_backups = backup.backups(folder)
    return {
        "database": str(db),
        "kind": found.kind,
        "schema_version": found.version,
        "schema_version_current": schema.CURRENT_VERSION,
        "journal_mode": found.journal_mode,
        "files": {suffix or "database": fs.file_size(db.with_name(db.name + suffix))
                  for suffix in ("", "-wal", "-shm")},
        **pages,
        "free_pages_bytes": pages["page_size"] * pages["freelist_count"],
        "tables": tables,
        "sqlite_version": apsw.sqlite_lib_version(),
        "apsw_version": apsw.apsw_version(),
        "settings": in_force,
        "storage": str(settings.storage),
        "backups": {"folder": str(folder), "count": len(found_backups),
                    "latest": str(found_backups[-1]) if found_backups else None},
    }


def _served_stats(settings: Settings) -> dict[str, Any]:
    """`db stats` of a server-backed store: its facts (Store.health) and row counts (Store.counts)."""
    store = open_store(settings, readonly=True)
    try:
        found = store.health(integrity=False)
        tables = store.counts()
    finally:
        store.close()
    facts = {("database_name" if k == "database" else k): v for k, v in found.checks.items() if k != "url"}
    return {"database": str(settings.database_url), **facts, "schema_version_current": None, "tables": tables,
            "problems": found.problems, "storage": str(settings.storage)}


def _served_lines(data: dict[str, Any]) -> list[str]:
    return [
        f"database      {data['database']}",
        f"backend       {data.get('backend')} {data.get('server_version', '')}".rstrip(),
        f"schema        {data.get('schema_version')}",
        f"size          {fs.human_size(data.get('database_bytes', 0))}, {data.get('connections', '?')} connections",
        "tables        " + ", ".join(f"{t} {n}" for t, n in data["tables"].items()),
        f"storage       {data['storage']} (artifacts)",
        *(f"problem       {p}" for p in data.get("problems", [])),
    ]


def stats_lines(data: dict[str, Any]) -> list[str]:
    if data.get("backend") not in (None, "sqlite"):
        return _served_lines(data)
    files = data["files"]
    out = [
        f"database      {data['database']}",
        f"kind          {probe.KIND_NAMES.get(data['kind'], data['kind'])}, schema"
        f" {data['schema_version']} (current {data['schema_version_current']})",
        f"journal mode  {data['journal_mode']}",
        f"files         database {fs.human_size(files['database'])}, wal {fs.human_size(files['-wal'])},"
        f" shm {fs.human_size(files['-shm'])}",
        f"pages         {data['page_count']} of {data['page_size']} bytes, {data['freelist_count']} free"
        f" ({fs.human_size(data['free_pages_bytes'])} reusable)",
        "tables        " + ", ".join(f"{t} {n}" for t, n in data["tables"].items()),
        f"sqlite        {data['sqlite_version']} (apsw {data['apsw_version']})",
        "settings      " + ", ".join(f"{k}={v}" for k, v in data["settings"].items()),
        f"backups       {data['backups']['count']} in {data['backups']['folder']}"
        + (f", latest {Path(data['backups']['latest']).name}" if data["backups"]["latest"] else ""),
    ]
    return out


@record
class CheckResult:
    database: Path | str  # a file, or a server's URL with its password masked
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    what: str = "integrity_check"

    @property
    def ok(self) -> bool:
        return self.problems == ["ok"]

    def lines(self) -> list[str]:
        if self.ok:
            return [f"{self.database}: {self.what} ok ({self.seconds:.2f} s)"]
        return [f"{self.database}: {self.what} found problems:", *(f"  {p}" for p in self.problems)]

    def to_dict(self) -> dict[str, Any]:
        return {"database": str(self.database), "ok": self.ok, "problems": [] if self.ok else self.problems,
                "seconds": round(self.seconds, 3)}


def check(settings: Settings) -> CheckResult:
    """`PRAGMA integrity_check` on the live database (a read transaction: blocks no one in WAL mode).

    On a server (PostgreSQL keeps its own pages): the store's integrity facts, Store.health.
    """
    db = settings.database
    started = time.monotonic()
    if settings.database_url.path is None:
        store = open_store(settings, readonly=True)
        try:
            found = store.health(integrity=True)
        finally:
            store.close()
        return CheckResult(str(settings.database_url), found.problems or ["ok"], time.monotonic() - started,
                           "schema check")
    with probe.existing(settings, readonly=True) as conn:
        try:
            rows = conn.execute(f"PRAGMA integrity_check({MAX_PROBLEMS})").fetchall()
            problems = [" ".join(str(r[0]).split()) for r in rows]
            incomplete = schema_problem(conn)
        except apsw.Error as exc:
            raise store_error(exc, db) from exc
    if incomplete:
        problems = [p for p in problems if p != "ok"] + [incomplete]
    return CheckResult(db, problems, time.monotonic() - started)


def schema_problem(conn: apsw.Connection) -> str | None:
    """Why the schema is not the one this stepflow makes (missing columns), or None. Read-only.

    Only for stepflow stores: a StepFlow Monitor store is expected to lack them until migrated.
    """
    if schema.user_version(conn) == 0:
        return None
    missing = schema.missing_columns(conn)
    if not missing:
        return None
    shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
    return f"schema incomplete: missing {shown}; run \"stepflow migrate --to-wal\" to repair it"


@record
class OptimizeResult:
    database: Path | str  # a file, or a server's URL with its password masked
    seconds: float
    size_before: int
    size_after: int
    wal_after: int
    served: bool = False

    def lines(self) -> list[str]:
        if self.served:
            return [f"{self.database}: VACUUM (ANALYZE) done in {self.seconds:.2f} s; database"
                    f" {fs.human_size(self.size_after)}"]
        return [f"{self.database}: ANALYZE and PRAGMA optimize done in {self.seconds:.2f} s; database"
                f" {fs.human_size(self.size_after)}, WAL {fs.human_size(self.wal_after)}"]

    def to_dict(self) -> dict[str, Any]:
        return {"database": str(self.database), "seconds": round(self.seconds, 3),
                "size_before": self.size_before, "size_after": self.size_after, "wal_after": self.wal_after}


def optimize(settings: Settings) -> OptimizeResult:
    """ANALYZE (fresh statistics for the query planner), PRAGMA optimize, a PASSIVE checkpoint.

    Raises:
        StoreError: no store, a legacy store (migrate it first), or it cannot be written.
    """
    if settings.database_url.path is None:  # on a server: the backend's own (PostgreSQL: VACUUM (ANALYZE))
        started = time.monotonic()
        store = open_store(settings)
        try:
            size = int(store.optimize().get("database_bytes", 0))
        finally:
            store.close()
        return OptimizeResult(str(settings.database_url), time.monotonic() - started, size, size, 0, served=True)
    db = settings.database
    probe.require(db)
    before = fs.file_size(db)
    started = time.monotonic()
    store = open_store(settings)
    try:
        wal_after = int(store.optimize().get("wal_after", 0))
    finally:
        store.close()
    return OptimizeResult(db, time.monotonic() - started, before, fs.file_size(db), wal_after)

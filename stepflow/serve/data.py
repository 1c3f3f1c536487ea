"""Every read (and the one upkeep write) the server makes of the store, in one module.

The rest of stepflow/serve/ never touches a store: it calls these functions and gets plain
values (dicts as `--json` prints them, LogLine rows). When the read path becomes the
`stepflow.history` library over a backend-neutral store, only this module is re-pointed.

Connections: APSW connections are cheap and SQLite in WAL mode lets readers run beside the
writer, so each server thread keeps one connection of its own (`Source.store()`).

Read-only, except `sweep_abandoned` (runs whose stepflow process is gone are stored as
`abandoned`, as `stepflow ls` does; best effort) and `optimize` (POST /api/health/optimize).
"""

from __future__ import annotations

import dataclasses
import mimetypes
import statistics as pystats
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepflow import abandoned, history
from stepflow.config import Settings
from stepflow.errors import NotFoundError, StoreError
from stepflow.maintenance import health as health_mod
from stepflow.maintenance import stats as stats_mod
from stepflow.store import RunQuery, SqliteStore, StepDuration, open_store
from stepflow.store.models import OPEN_STATUSES, LogLine, Run, Step

MAX_OFFSET = 100_000
CACHE_PAGES = 1000  # per connection; a server has one per thread (up to 40), the OS caches the file anyway
FAILED = ("failed", "timed_out", "abandoned", "cancelled")


class Source:
    """The store the server reads, one connection per thread, opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._all: list[SqliteStore] = []
        self._lock = threading.Lock()

    def store(self) -> SqliteStore:
        store: SqliteStore | None = getattr(self._local, "store", None)
        if store is None:
            if not self.settings.database.exists():
                raise StoreError(f"no store at {self.settings.database}; record a run with \"stepflow run -- CMD\"")
            store = open_store(dataclasses.replace(
                self.settings, cache_size=min(self.settings.cache_size, CACHE_PAGES)))
            self._local.store = store
            with self._lock:
                self._all.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            for store in self._all:
                store.close()
            self._all.clear()


def glob_literal(name: str) -> str:
    """A job name as a GLOB pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


# -- runs --------------------------------------------------------------------------------------


def list_runs(src: Source, *, status: str | None = None, name: str | None = None, tag: str | None = None,
              since_ts: float | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """`ls --json` rows, newest first. store.find_runs + history.run_summary."""
    offset = min(offset, MAX_OFFSET)
    runs = src.store().find_runs(RunQuery(status=status, name_glob=name, tag=tag, since_ts=since_ts,
                                          limit=limit + offset))
    return [history.run_summary(r) for r in runs[offset:]]


def job_runs(src: Source, name: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The latest runs of exactly `name`, newest first."""
    return list_runs(src, name=glob_literal(name), limit=limit)


def active_runs(src: Source) -> list[dict[str, Any]]:
    """Runs still running or pending, newest first."""
    store = src.store()
    runs = [*store.find_runs(RunQuery(status="running")), *store.find_runs(RunQuery(status="pending"))]
    runs.sort(key=lambda r: r.created_ts or 0.0, reverse=True)
    return [history.run_summary(r) for r in runs]


def resolve(src: Source, ref: str) -> Run:
    """A run by id, unique prefix or `last`. Raises NotFoundError / UsageError (store.resolve)."""
    return src.store().resolve(ref)


def run_detail(src: Source, ref: str) -> dict[str, Any]:
    """`show --json` of one run: store.resolve/steps/artifacts + history.run_detail."""
    store = src.store()
    run = store.resolve(ref)
    return history.run_detail(run, store.steps(run.id), store.artifacts(run.id))


def artifact_ids(src: Source, run_id: str) -> list[str]:
    """Ids of a run's artifacts, in the order run_detail lists them (store.artifacts)."""
    return [a.id for a in src.store().artifacts(run_id)]


def run_state(src: Source, run_id: str) -> tuple[Run | None, list[Step]]:
    """A run row and its steps as they are now (the watcher's view of a followed run)."""
    store = src.store()
    return store.get_run(run_id), store.steps(run_id)


def log_lines(src: Source, run_id: str, *, step_index: int | None = None, stream: int | None = None,
              after: int = -1, limit: int | None = None) -> list[LogLine]:
    """Output lines after line number `after`, in order, at most `limit`. store.log_lines."""
    out: list[LogLine] = []
    for line in src.store().log_lines(run_id, step_index=step_index, stream=stream, after_line=after):
        out.append(line)
        if limit is not None and len(out) >= limit:
            break
    return out


def find_step(src: Source, run_id: str, step: str) -> int:
    """A step's index from its name, or its number as `show` lists it (1 = first).

    Raises:
        NotFoundError: the run has no such step.
    """
    steps = src.store().steps(run_id)
    named = [s for s in steps if s.name == step]
    if named:
        return named[0].step_index
    if step.isascii() and step.isdigit() and any(s.step_index == int(step) - 1 for s in steps):
        return int(step) - 1
    raise NotFoundError(f"run {run_id[:8]} has no step {step!r}")


def step_summaries(steps: list[Step]) -> list[dict[str, Any]]:
    return [history.step_detail(s) for s in steps]


def run_summary(run: Run) -> dict[str, Any]:
    return history.run_summary(run)


def step_history(src: Source, name: str, *, runs: int = 50) -> list[StepDuration]:
    """Step durations of the latest `runs` completed runs of `name`, newest first. store.step_durations."""
    return src.store().step_durations(name, runs=runs)


def usual_step_seconds(src: Source, name: str, *, exclude: str, runs: int = 20) -> dict[str, float]:
    """Per step name, the median duration over the latest `runs` completed runs of `name`, other than `exclude`."""
    by_step: dict[str, list[float]] = {}
    for row in step_history(src, name, runs=runs + 1):
        if row.run_id != exclude and row.name is not None and row.seconds is not None:
            by_step.setdefault(row.name, []).append(row.seconds)
    return {step: pystats.median(values) for step, values in by_step.items()}


def artifact_file(src: Source, run_id: str, artifact_id: str) -> tuple[Path, str, str]:
    """The stored file of one artifact: (path, download name, mime type).

    Only a regular file inside the store's artifacts folder is ever given out, whatever the
    row's file_path says (a legacy row may name any path).

    Raises:
        NotFoundError: no such artifact of that run, or its file is gone or lies elsewhere.
    """
    found = [a for a in src.store().artifacts(run_id) if a.id == artifact_id]
    if not found:
        raise NotFoundError(f"run {run_id[:8]} has no artifact {artifact_id!r}")
    artifact = found[0]
    root = src.settings.artifacts.resolve()
    try:
        path = Path(artifact.file_path).resolve()
    except (OSError, ValueError):
        raise NotFoundError(f"artifact {artifact_id!r}: its file is not readable") from None
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFoundError(f"artifact {artifact_id!r}: its file is not in the store")
    name = artifact.file_name or artifact.name or path.name
    mime = artifact.mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return path, name, mime


# -- changes -----------------------------------------------------------------------------------


def data_version(src: Source) -> int:
    """Changes when another connection commits (store.data_version): what the watcher polls."""
    return src.store().data_version()


def sweep_abandoned(src: Source) -> set[str]:
    """Store as `abandoned` the runs whose stepflow process is gone (abandoned.sweep). Best effort."""
    try:
        return abandoned.sweep(src.store())
    except StoreError:
        return set()


# -- health and upkeep -------------------------------------------------------------------------


def health_report(src: Source, *, integrity: bool = True) -> dict[str, Any]:
    """The facts of `stepflow health --json` (maintenance.health.health)."""
    return health_mod.health(src.settings, integrity=integrity).to_dict()


def database_facts(src: Source) -> dict[str, Any]:
    """`stepflow db stats --json` (maintenance.stats.stats)."""
    return stats_mod.stats(src.settings)


def optimize(src: Source) -> dict[str, Any]:
    """`stepflow db optimize --json` (maintenance.stats.optimize): ANALYZE and PRAGMA optimize."""
    return stats_mod.optimize(src.settings).to_dict()


# -- aggregates (SQL of their own: the lead ports these to the history library's stats) ---------


@dataclass(slots=True)
class JobFacts:
    """What /metrics says of one job name."""

    name: str
    last_status: str
    last_duration: float | None
    last_success_ts: float | None
    consecutive_failures: int
    runs_by_status: dict[str, int]


def counts_by_status(src: Source) -> dict[str, int]:
    rows: list[Any] = src.store().conn.execute("SELECT status, count(*) FROM executions GROUP BY status").fetchall()
    return {str(s): int(n) for s, n in rows}


def job_facts(src: Source) -> list[JobFacts]:
    """Per job name: last status and duration, last success time, failures since it, runs by status.

    Three grouped queries over the executions table (the (name, created_ts) index serves them).
    """
    conn = src.store().conn
    totals: dict[str, dict[str, int]] = {}
    for name, status, n in conn.execute("SELECT name, status, count(*) FROM executions GROUP BY name, status"):
        totals.setdefault(str(name), {})[str(status)] = int(n)
    last = {
        str(r[0]): r[1:] for r in conn.execute(
            "SELECT name, status, (julianday(completed_at) - julianday(started_at)) * 86400.0 FROM"
            " (SELECT name, status, started_at, completed_at, ROW_NUMBER() OVER"
            " (PARTITION BY name ORDER BY created_ts DESC, rowid DESC) AS k FROM executions) WHERE k = 1")
    }
    success = {
        str(r[0]): (r[1], r[2]) for r in conn.execute(
            "SELECT name, max(created_ts), (julianday(max(completed_at)) - 2440587.5) * 86400.0"
            " FROM executions WHERE status = 'completed' GROUP BY name")
    }
    placeholders = ", ".join("?" * len(FAILED))
    streaks = {
        str(r[0]): int(r[1]) for r in conn.execute(
            "SELECT e.name, count(*) FROM executions e LEFT JOIN"
            " (SELECT name, max(created_ts) AS ts FROM executions WHERE status = 'completed' GROUP BY name) s"
            f" ON s.name = e.name WHERE e.status IN ({placeholders}) AND e.created_ts > COALESCE(s.ts, -1e300)"
            " GROUP BY e.name", FAILED)
    }
    out = []
    for name, by_status in sorted(totals.items()):
        status, seconds = last.get(name, ("unknown", None))
        out.append(JobFacts(name, str(status), seconds, success.get(name, (None, None))[1],
                            streaks.get(name, 0), by_status))
    return out


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of `values` (sorted or not); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def run_statistics(src: Source, *, since_ts: float | None = None, name: str | None = None) -> dict[str, Any]:
    """Success rate and run durations (mean, p50, p95) overall and by job name."""
    sql = ("SELECT name, status, (julianday(completed_at) - julianday(started_at)) * 86400.0 FROM executions"
           " WHERE 1 = 1")
    params: list[Any] = []
    if since_ts is not None:
        sql += " AND created_ts >= ?"
        params.append(since_ts)
    if name is not None:
        sql += " AND name = ?"
        params.append(name)
    jobs: dict[str, dict[str, Any]] = {}
    for job, status, seconds in src.store().conn.execute(sql, params):
        entry = jobs.setdefault(str(job), {"runs": 0, "by_status": {}, "durations": []})
        entry["runs"] += 1
        entry["by_status"][status] = entry["by_status"].get(status, 0) + 1
        if status == "completed" and seconds is not None:
            entry["durations"].append(float(seconds))
    everything: dict[str, Any] = {"runs": 0, "by_status": {}, "durations": []}
    for entry in jobs.values():
        everything["runs"] += entry["runs"]
        everything["durations"] += entry["durations"]
        for status, n in entry["by_status"].items():
            everything["by_status"][status] = everything["by_status"].get(status, 0) + n
    return {**_summarise(everything), "jobs": [{"name": job, **_summarise(e)} for job, e in sorted(jobs.items())]}


def _summarise(entry: dict[str, Any]) -> dict[str, Any]:
    by_status: dict[str, int] = entry["by_status"]
    finished = sum(n for status, n in by_status.items() if status not in OPEN_STATUSES)
    durations: list[float] = entry["durations"]
    return {
        "runs": entry["runs"],
        "by_status": by_status,
        "success_rate": round(by_status.get("completed", 0) / finished, 4) if finished else None,
        "duration_s": {
            "mean": round(pystats.fmean(durations), 6) if durations else None,
            "p50": percentile(durations, 0.5),
            "p95": percentile(durations, 0.95),
            "max": max(durations) if durations else None,
        },
    }

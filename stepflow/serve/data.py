"""Every read (and the one upkeep write) the server makes of the store, in one module.

The rest of stepflow/serve/ never touches a store: it calls these functions and gets plain
values (dicts as `--json` prints them, LogLine rows). Everything here goes through the `Store`
protocol (stepflow.store.base) and the history library (stepflow.history), never SQL, so the
server works on any backend.

Stores: each server thread keeps one store of its own (`Source.store()`); SQLite in WAL mode
lets those readers run beside the writer. Change notification is one `Watch` per server
(`Source.watch()`), shared by the live hub and never one per client.

Read-only, except `sweep_abandoned` (runs whose stepflow process is gone are stored as
`abandoned`, as `stepflow ls` does; best effort), `run_detail` (the same check for one run, as
`stepflow show` does) and `optimize` (POST /api/health/optimize).
"""

from __future__ import annotations

import math
import mimetypes
import statistics as pystats
import threading
from pathlib import Path
from typing import Any

from stepflow.config import Settings
from stepflow.errors import NotFoundError, StoreError
from stepflow.history import abandoned
from stepflow.history import logs as history_logs
from stepflow.history import runs as history_runs
from stepflow.history.detail import run_summary, step_detail
from stepflow.maintenance import health as health_mod
from stepflow.maintenance import stats as stats_mod
from stepflow.record import record, replace
from stepflow.store import RunQuery, StepDuration, Store, Watch, exists, open_store
from stepflow.store.base import OPEN_STATUSES, LogLine, Run, RunOutcome, Step

MAX_OFFSET = 100_000
CACHE_PAGES = 1000  # per SQLite connection; a server has one per thread (up to 40), the OS caches the file anyway
FAILED = ("failed", "timed_out", "abandoned", "cancelled")


class Source:
    """The store the server reads, one per thread, opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._all: list[Store] = []
        self._lock = threading.Lock()

    def store(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            if not exists(self.settings):
                raise StoreError(f"no store at {self.settings.database_url}; record a run with \"stepflow run -- CMD\"")
            store = open_store(replace(
                self.settings, cache_size=min(self.settings.cache_size, CACHE_PAGES)))
            self._local.store = store
            with self._lock:
                self._all.append(store)
        return store

    def watch(self) -> Watch:
        """A new Watch over the store: the hub opens one for the whole server (close it when done)."""
        return self.store().watch()

    def close(self) -> None:
        with self._lock:
            for store in self._all:
                store.close()
            self._all.clear()


def glob_literal(name: str) -> str:
    """A job name as a RunQuery.name_glob that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


# -- runs --------------------------------------------------------------------------------------


def list_runs(src: Source, *, status: str | None = None, name: str | None = None, tag: str | None = None,
              since_ts: float | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """`ls --json` rows, newest first, `offset` skipped by the store (RunQuery.offset).

    Not history.list_runs: its abandoned sweep reads every open run on each call, and the hub
    already sweeps every few seconds for the whole server (`sweep_abandoned`).
    """
    query = RunQuery(status=status, name_glob=name, tag=tag, since_ts=since_ts, limit=limit,
                     offset=min(offset, MAX_OFFSET))
    return [run_summary(r) for r in src.store().find_runs(query)]


def job_runs(src: Source, name: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The latest runs of exactly `name`, newest first."""
    return list_runs(src, name=glob_literal(name), limit=limit)


def active_runs(src: Source) -> list[dict[str, Any]]:
    """Runs still running or pending, newest first."""
    store = src.store()
    runs = [run for status in OPEN_STATUSES for run in store.find_runs(RunQuery(status=status))]
    runs.sort(key=lambda r: r.created_ts or 0.0, reverse=True)
    return [run_summary(r) for r in runs]


def resolve(src: Source, ref: str) -> Run:
    """A run by id, unique prefix or `last`. Raises NotFoundError / UsageError (history.resolve)."""
    return history_runs.resolve(src.store(), ref)


def run_detail(src: Source, ref: str) -> dict[str, Any]:
    """`show --json` of one run (history.show_run: resolve, the abandoned check, run_detail)."""
    return history_runs.show_run(src.store(), ref)


def artifact_ids(src: Source, run_id: str) -> list[str]:
    """Ids of a run's artifacts, in the order run_detail lists them (store.artifacts)."""
    return [a.id for a in src.store().artifacts(run_id)]


def run_state(src: Source, run_id: str) -> tuple[Run | None, list[Step]]:
    """A run row and its steps as they are now (the hub's view of a followed run)."""
    store = src.store()
    return store.get_run(run_id), store.steps(run_id)


def log_lines(src: Source, run_id: str, *, step_index: int | None = None, stream: int | None = None,
              after: int = -1, limit: int | None = None) -> list[LogLine]:
    """Output lines after line number `after`, in order, at most `limit` (history.lines)."""
    out: list[LogLine] = []
    for line in history_logs.lines(src.store(), run_id, step_index=step_index, stream=stream, after_line=after):
        out.append(line)
        if limit is not None and len(out) >= limit:
            break
    return out


def find_step(src: Source, run: Run, step: str) -> int:
    """A step's index from its name, or its number as `show` lists it (1 = first) (history.find_step).

    Raises:
        NotFoundError: the run has no such step.
    """
    return history_logs.find_step(src.store(), run, step)


def step_summaries(steps: list[Step]) -> list[dict[str, Any]]:
    return [step_detail(s) for s in steps]


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


def sweep_abandoned(src: Source) -> set[str]:
    """Store as `abandoned` the runs whose stepflow process is gone (history's sweep). Best effort."""
    try:
        return abandoned.sweep(src.store())
    except StoreError:
        return set()


# -- health and upkeep -------------------------------------------------------------------------


def health_report(src: Source, *, integrity: bool = True) -> dict[str, Any]:
    """The facts of `stepflow health --json` (maintenance.health.health, over Store.health)."""
    return health_mod.health(src.settings, integrity=integrity).to_dict()


def database_facts(src: Source) -> dict[str, Any]:
    """`stepflow db stats --json` (maintenance.stats.stats)."""
    return stats_mod.stats(src.settings)


def optimize(src: Source) -> dict[str, Any]:
    """`stepflow db optimize --json` (maintenance.stats.optimize, over Store.optimize)."""
    return stats_mod.optimize(src.settings).to_dict()


# -- aggregates: Store.status_counts and Store.run_outcomes, counted here ------------------------


@record
class JobFacts:
    """What /metrics says of one job name."""

    name: str
    last_status: str
    last_duration: float | None
    last_success_ts: float | None
    consecutive_failures: int
    runs_by_status: dict[str, int]


def counts_by_status(src: Source) -> dict[str, int]:
    """Runs in the store by status (Store.status_counts)."""
    return src.store().status_counts()


def job_facts(src: Source) -> list[JobFacts]:
    """Per job name: last status and duration, last success time, failures since it, runs by status.

    One pass over Store.run_outcomes (newest first): a name's first row is its latest run, its
    first completed row its latest success, and the failures counted before that are its streak.
    """
    facts: dict[str, JobFacts] = {}
    succeeded: set[str] = set()
    for row in src.store().run_outcomes():
        job = facts.get(row.name)
        if job is None:
            job = facts[row.name] = JobFacts(row.name, row.status, row.seconds, None, 0, {})
        job.runs_by_status[row.status] = job.runs_by_status.get(row.status, 0) + 1
        if row.name in succeeded:
            continue
        if row.status == "completed":
            succeeded.add(row.name)
            job.last_success_ts = row.completed_ts
        elif row.status in FAILED:
            job.consecutive_failures += 1
    return [facts[name] for name in sorted(facts)]


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of `values` (sorted or not); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def run_statistics(src: Source, *, since_ts: float | None = None, name: str | None = None) -> dict[str, Any]:
    """Success rate and run durations (mean, p50, p95) overall and by job name (Store.run_outcomes)."""
    query = RunQuery(since_ts=since_ts, name_glob=glob_literal(name) if name is not None else None)
    jobs: dict[str, dict[str, Any]] = {}
    for row in src.store().run_outcomes(query):
        entry = jobs.setdefault(row.name, {"runs": 0, "by_status": {}, "durations": []})
        _count(entry, row)
    everything: dict[str, Any] = {"runs": 0, "by_status": {}, "durations": []}
    for entry in jobs.values():
        everything["runs"] += entry["runs"]
        everything["durations"] += entry["durations"]
        for status, n in entry["by_status"].items():
            everything["by_status"][status] = everything["by_status"].get(status, 0) + n
    return {**_summarise(everything), "jobs": [{"name": job, **_summarise(e)} for job, e in sorted(jobs.items())]}


def _count(entry: dict[str, Any], row: RunOutcome) -> None:
    entry["runs"] += 1
    entry["by_status"][row.status] = entry["by_status"].get(row.status, 0) + 1
    if row.status == "completed" and row.seconds is not None and math.isfinite(row.seconds):
        entry["durations"].append(float(row.seconds))


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

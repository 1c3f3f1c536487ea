"""The store reads the cron parts need: job names, a job's recent runs and statuses, its stats
and metrics. Read-only.

Through the store protocol alone (find_runs, step_durations, job_counts), so it works on
every backend.
"""

from __future__ import annotations

from typing import Any

from stepflow.cron.prom import JobMetrics, job_metrics
from stepflow.cron.stats import DEFAULT_RECENT, job_stats
from stepflow.history.detail import run_summary
from stepflow.store import RunQuery


def name_glob(name: str) -> str:
    """A GLOB pattern matching exactly `name` (its wildcard characters bracketed)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def job_names(store: Any) -> list[str]:
    """Every run name in the store, sorted."""
    return sorted(store.job_counts())


def runs_total(store: Any, name: str) -> int:
    return int(store.job_counts().get(name, 0))


def recent_runs(store: Any, name: str, *, limit: int) -> list[dict[str, Any]]:
    """The `limit` newest runs named `name`, as `ls --json` dicts."""
    return [run_summary(r) for r in store.find_runs(RunQuery(name_glob=name_glob(name), limit=limit))]


def recent_statuses(store: Any, name: str, *, limit: int, with_ids: bool = False) -> list[Any]:
    """Statuses of the `limit` newest runs named `name`, newest first (for streak_news);
    `with_ids`: (id, status) pairs."""
    runs = store.find_runs(RunQuery(name_glob=name_glob(name), limit=limit))
    return [(r.id, r.status) for r in runs] if with_ids else [r.status for r in runs]


def runs_with_steps(store: Any, name: str, *, recent: int = DEFAULT_RECENT) -> list[dict[str, Any]]:
    """The newest `recent` runs of `name` with the steps of the completed ones: two queries."""
    runs = recent_runs(store, name, limit=recent)
    steps: dict[str, list[dict[str, Any]]] = {}
    for row in store.step_durations(name, runs=recent):
        if row.name is not None:
            steps.setdefault(row.run_id, []).append(
                {"index": row.step_index, "name": row.name, "status": row.status, "duration_s": row.seconds})
    for run in runs:
        run["steps"] = steps.get(run["id"], [])
    return runs


def stats(store: Any, name: str | None = None, *, recent: int = DEFAULT_RECENT) -> dict[str, Any]:
    """`stepflow stats [NAME]`: job_stats over the store (one job, or every job)."""
    names = [name] if name is not None else job_names(store)
    runs: list[dict[str, Any]] = []
    for job in names:
        runs += runs_with_steps(store, job, recent=recent)
    return job_stats(runs, recent=recent)


def metrics(store: Any, *, recent: int = 50) -> list[JobMetrics]:
    """JobMetrics of every job in the store, for prom.update_textfile."""
    out = []
    counts = store.job_counts()
    for job in sorted(counts):
        runs = recent_runs(store, job, limit=recent)
        last_success = None
        if not any(r["status"] == "completed" for r in runs):
            found = store.find_runs(RunQuery(status="completed", name_glob=name_glob(job), limit=1))
            last_success = run_summary(found[0]) if found else None
        out.append(job_metrics(job, runs, runs_total=counts[job], last_success=last_success))
    return out

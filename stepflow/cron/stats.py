"""`stepflow stats`: success rate, p50/p95 durations, the streak and slower steps. Pure.

Over the `recent` newest runs of each job:
- success rate: completed runs over those that count (completed, failed, timed_out; see
  streak.py: cancelled, abandoned and skipped runs are counted apart, not as failures);
- p50/p95 of the run's duration over its completed runs, and of each step's over its
  completed occurrences in them (a step name met twice in one run counts as their sum);
  nearest rank: p-th percentile = the ceil(p/100 x n)-th smallest value;
- the current failure streak;
- slower steps: a step whose duration in the newest run having it is more than 1.5 x the
  median of the earlier runs' AND more than that median + 1 s (so a 0.1 s step taking 0.3 s
  is not news), with at least 3 earlier runs to judge from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from stepflow.cron.streak import FAILURE, SUCCESS, failure_streak
from stepflow.fmt import duration, safe_text

DEFAULT_RECENT = 50
SLOWER_RATIO = 1.5
SLOWER_SECONDS = 1.0
MIN_EARLIER = 3


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of `values` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    """The middle value (the mean of the two middle ones for an even count)."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _step_seconds(run: Mapping[str, Any]) -> dict[str, float]:
    """Seconds of each completed step of `run` by name (repeats summed)."""
    found: dict[str, float] = {}
    for step in run.get("steps") or ():
        seconds = step.get("duration_s")
        if step.get("status") == "completed" and seconds is not None and step.get("name") is not None:
            found[step["name"]] = found.get(step["name"], 0.0) + float(seconds)
    return found


def step_stats(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per step (in the order the newest runs show them): runs, p50/p95, the last duration, the
    median before it and whether it got slower. `runs` are completed runs, newest first."""
    series: dict[str, list[float]] = {}  # newest first
    for run in runs:
        for name, seconds in _step_seconds(run).items():
            series.setdefault(name, []).append(seconds)
    out = []
    for name, values in series.items():
        last, earlier = values[0], values[1:]
        usual = median(earlier) if len(earlier) >= MIN_EARLIER else None
        slower = usual is not None and last > SLOWER_RATIO * usual and last > usual + SLOWER_SECONDS
        out.append({
            "name": name, "runs": len(values), "p50_s": percentile(values, 50), "p95_s": percentile(values, 95),
            "last_s": last, "usual_s": usual, "slower": slower,
            "ratio": round(last / usual, 2) if usual else None,
        })
    return out


def one_job(name: str, runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The stats of one job from its runs, newest first."""
    statuses = [r.get("status") for r in runs]
    succeeded = sum(s in SUCCESS for s in statuses)
    failed = sum(s in FAILURE for s in statuses)
    completed = [r for r in runs if r.get("status") in SUCCESS]
    durations = [float(r["duration_s"]) for r in completed if r.get("duration_s") is not None]
    steps = step_stats(completed)
    return {
        "name": name,
        "runs": len(runs),
        "succeeded": succeeded,
        "failed": failed,
        "other": len(runs) - succeeded - failed,
        "success_rate": round(succeeded / (succeeded + failed), 4) if succeeded + failed else None,
        "duration_p50_s": percentile(durations, 50),
        "duration_p95_s": percentile(durations, 95),
        "streak": failure_streak(statuses),
        "last_status": statuses[0] if statuses else None,
        "last_started_at": runs[0].get("started_at") if runs else None,
        "steps": steps,
        "slower_steps": [s["name"] for s in steps if s["slower"]],
    }


def job_stats(runs_with_steps: Iterable[Mapping[str, Any]], *, recent: int = DEFAULT_RECENT) -> dict[str, Any]:
    """Stats per job name from runs (`show --json` dicts, newest first, jobs mixed), keeping the
    `recent` newest of each job. Jobs come sorted by name."""
    by_job: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs_with_steps:
        kept = by_job.setdefault(str(run.get("name") or ""), [])
        if len(kept) < recent:
            kept.append(run)
    return {"recent": recent, "jobs": [one_job(name, by_job[name]) for name in sorted(by_job)]}


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}%"


def render_stats(stats: Mapping[str, Any]) -> str:
    """Plain text for a terminal or a mail: a line per job, an indented table of its steps."""
    jobs = stats.get("jobs") or []
    if not jobs:
        return "no runs recorded yet\n"
    out: list[str] = []
    for job in jobs:
        counted = job["succeeded"] + job["failed"]
        other = f", {job['other']} other" if job["other"] else ""
        streak = f"  FAILING {job['streak']} in a row" if job["streak"] else ""
        out.append(
            f"{safe_text(job['name'])}: {job['runs']} runs, success {_pct(job['success_rate'])}"
            f" ({job['succeeded']}/{counted}{other}), p50 {duration(job['duration_p50_s'])},"
            f" p95 {duration(job['duration_p95_s'])}, last {job['last_status']}{streak}"
        )
        steps = job["steps"]
        if steps:
            width = max(len(safe_text(s["name"])) for s in steps)
            for s in steps:
                note = (f"  slower: {s['ratio']:g}x its usual {duration(s['usual_s'])}" if s["slower"] else "")
                out.append(f"  {safe_text(s['name']).ljust(width)}  {s['runs']:>4} runs  p50 {duration(s['p50_s']):>7}"
                           f"  p95 {duration(s['p95_s']):>7}  last {duration(s['last_s']):>7}{note}")
    return "\n".join(out) + "\n"

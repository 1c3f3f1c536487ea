"""`stats`: percentiles, success rates, streaks and slower steps from plain run dicts, and the
same over a real store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stepflow.config import load_settings
from stepflow.cron import query
from stepflow.cron.stats import job_stats, median, percentile, render_stats
from stepflow.store import open_store
from tests.conftest import StepflowRunner


@pytest.mark.parametrize(("values", "p", "expected"), [
    ([], 50, None), ([5.0], 95, 5.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0), ([1.0, 2.0, 3.0, 4.0], 95, 4.0),
    (list(map(float, range(1, 101))), 95, 95.0), (list(map(float, range(1, 101))), 50, 50.0), ([3.0, 1.0, 2.0], 50, 2.0),
])
def test_percentile_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_median() -> None:
    assert median([]) is None and median([3.0, 1.0]) == 2.0 and median([5.0, 1.0, 3.0]) == 3.0


def run(name: str, status: str, seconds: float, steps: dict[str, float] | None = None) -> dict[str, Any]:
    return {"name": name, "status": status, "duration_s": seconds, "started_at": "2026-12-03T10:00:00+00:00",
            "steps": [{"name": k, "status": "completed", "duration_s": v} for k, v in (steps or {}).items()]}


def test_rates_percentiles_and_streak_per_job() -> None:
    runs = [  # newest first, two jobs mixed
        run("a", "failed", 1.0), run("b", "completed", 5.0), run("a", "timed_out", 60.0),
        run("a", "cancelled", 2.0), run("a", "completed", 10.0), run("a", "completed", 20.0),
        run("a", "skipped", 0.0), run("a", "completed", 30.0),
    ]
    stats = job_stats(runs)
    a, b = stats["jobs"]
    assert (a["name"], a["runs"], a["succeeded"], a["failed"], a["other"]) == ("a", 7, 3, 2, 2)
    assert a["success_rate"] == 0.6 and a["streak"] == 2 and a["last_status"] == "failed"
    assert (a["duration_p50_s"], a["duration_p95_s"]) == (20.0, 30.0)  # completed runs only
    assert (b["success_rate"], b["streak"], b["duration_p50_s"]) == (1.0, 0, 5.0)


def test_recent_keeps_the_newest_runs_of_each_job() -> None:
    runs = [run("a", "failed", 1.0)] * 3 + [run("a", "completed", 1.0)] * 10
    assert job_stats(runs, recent=3)["jobs"][0]["success_rate"] == 0.0
    assert job_stats(runs, recent=13)["jobs"][0]["runs"] == 13


def test_a_job_with_only_neutral_runs_has_no_rate() -> None:
    assert job_stats([run("a", "skipped", 0.0)])["jobs"][0]["success_rate"] is None


@pytest.mark.parametrize(("last", "earlier", "slower"), [
    (10.0, [4.0, 5.0, 6.0], True),  # 2x and +5 s
    (7.0, [4.0, 5.0, 6.0], False),  # +2 s but only 1.4x
    (0.9, [0.2, 0.3, 0.3], False),  # 3x but only +0.6 s: not news
    (2.4, [1.0, 1.2, 1.4], True),  # exactly past both: 2x and +1.2 s
    (100.0, [1.0, 1.0], False),  # two earlier runs are not enough to judge
    (100.0, [1.0, 1.0, 1.0, 90.0, 90.0, 90.0, 90.0], False),  # the usual is the median, 90 s
])
def test_slower_steps(last: float, earlier: list[float], slower: bool) -> None:
    runs = [run("j", "completed", 1.0, {"build": last})] + [run("j", "completed", 1.0, {"build": e}) for e in earlier]
    step = job_stats(runs)["jobs"][0]["steps"][0]
    assert step["slower"] is slower and step["last_s"] == last
    assert job_stats(runs)["jobs"][0]["slower_steps"] == (["build"] if slower else [])


def test_steps_of_failed_runs_and_unfinished_steps_are_left_out() -> None:
    failed = run("j", "failed", 1.0, {"build": 500.0})
    unfinished = {**run("j", "completed", 1.0), "steps": [{"name": "build", "status": "failed", "duration_s": 400.0}]}
    runs = [failed, unfinished] + [run("j", "completed", 1.0, {"build": 2.0, "test": 1.0})] * 4
    steps = {s["name"]: s for s in job_stats(runs)["jobs"][0]["steps"]}
    assert steps["build"]["runs"] == 4 and steps["build"]["p95_s"] == 2.0 and not steps["build"]["slower"]


def test_render_names_slower_steps_and_streaks() -> None:
    runs = [run("nightly", "failed", 1.0)] + [run("nightly", "completed", 61.0, {"dump": 40.0, "upload": 10.0})] * 3
    runs.insert(1, run("nightly", "completed", 95.0, {"dump": 41.0, "upload": 30.0}))
    text = render_stats(job_stats(runs))
    assert text.splitlines()[0] == ("nightly: 5 runs, success 80% (4/5), p50 1m01s, p95 1m35s, last failed"
                                    "  FAILING 1 in a row")
    assert "upload     4 runs  p50   10.0s  p95   30.0s  last   30.0s  slower: 3x its usual 10.0s" in text
    assert render_stats(job_stats([])) == "no runs recorded yet\n"


def test_render_escapes_control_characters_in_names() -> None:
    assert "\x1b" not in render_stats(job_stats([run("evil\x1b[2J", "completed", 1.0)]))


MARKED = "echo STEP_START:prepare; echo STEP_START:work; {work}; echo STEP_COMPLETE:work"


def test_stats_over_a_real_store(stepflow: StepflowRunner, storage: Path) -> None:
    for code in (0, 0, 0, 1):
        done = stepflow("run", "--name", "job", "--", "sh", "-c", MARKED.format(work=f"test {code} = 0 || exit {code}"))
        assert done.returncode == code, done.stderr
    stepflow("run", "--name", "other", "--", "true")
    store = open_store(load_settings(storage=storage))
    try:
        everything = query.stats(store)
        one = query.stats(store, "job")
        none = query.stats(store, "missing")
    finally:
        store.close()
    assert [j["name"] for j in everything["jobs"]] == ["job", "other"]
    job = one["jobs"][0]
    assert (job["runs"], job["succeeded"], job["failed"], job["streak"]) == (4, 3, 1, 1)
    assert [(s["name"], s["runs"]) for s in job["steps"]] == [("prepare", 3), ("work", 3)]
    assert none["jobs"] == []


def test_the_stats_command(stepflow: StepflowRunner) -> None:
    for code in (0, 1, 1):
        stepflow("run", "--name", "nightly", "--", "sh", "-c", MARKED.format(work=f"test {code} = 0 || exit {code}"))
    text = stepflow("stats")
    assert text.returncode == 0, text.stderr
    assert text.stdout.decode().startswith("nightly: 3 runs, success 33% (1/3), p50 ")
    assert b"FAILING 2 in a row" in text.stdout
    as_json = stepflow("stats", "nightly", "--json", "--recent", "2")
    assert as_json.returncode == 0
    parsed = json.loads(as_json.stdout)
    assert parsed["recent"] == 2 and parsed["jobs"][0]["runs"] == 2 and parsed["jobs"][0]["streak"] == 2


def test_the_stats_command_for_an_unknown_job(stepflow: StepflowRunner) -> None:
    stepflow("run", "--", "true")
    done = stepflow("stats", "nope")
    assert (done.returncode, done.stderr) == (1, b"stepflow: error: no runs named 'nope'; see \"stepflow ls\"\n")


def test_the_stats_command_without_a_store(stepflow: StepflowRunner, storage: Path) -> None:
    done = stepflow("stats")
    assert done.returncode == 1 and done.stderr.startswith(b"stepflow: error: no store at ")

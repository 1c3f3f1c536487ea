"""The backend contract: what every `Store` does, through the protocol alone.

Parametrised over backends by the `url` fixture: SQLite, and PostgreSQL on the real server
tests/pgserver.py starts (`pg_url`; skipped, saying why, where none can start). Nothing here
touches a connection or SQL.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from stepflow.config import Settings, load_settings
from stepflow.errors import StoreError
from stepflow.store import (
    LogBlock,
    NewArtifact,
    NewRun,
    NewStep,
    Run,
    RunChange,
    RunQuery,
    Step,
    StepChange,
    Store,
    open_store,
)
from stepflow.store.base import Artifact, Deleted, Health

T0 = 1_750_000_000.0
WAIT = 30.0  # seconds a waiter may wait for a commit it was promised: generous, never raced


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/contract.db"
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    raise AssertionError(request.param)


@pytest.fixture
def settings(url: str, tmp_path: Path) -> Settings:
    return load_settings({"STEPFLOW_STORAGE_PATH": str(tmp_path / "storage")}, database=url)


@pytest.fixture
def opener(settings: Settings) -> Iterator[Callable[[], Store]]:
    opened: list[Store] = []

    def open_one() -> Store:
        opened.append(open_store(settings))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Callable[[], Store]) -> Store:
    return opener()


def run(run_id: str, **fields: object) -> Run:
    values: dict[str, object] = {"name": "nightly", "command": "./job.sh", "status": "completed",
                                 "created_at": "2025-06-15T12:00:00+00:00", "created_ts": T0}
    values.update(fields)
    return Run(id=run_id, **values)  # type: ignore[arg-type]


def step(step_id: str, run_id: str, index: int, **fields: object) -> Step:
    values: dict[str, object] = {"name": f"step{index}", "status": "completed",
                                 "created_at": "2025-06-15T12:00:00+00:00"}
    values.update(fields)
    return Step(id=step_id, execution_id=run_id, step_index=index, **values)  # type: ignore[arg-type]


def test_a_run_reads_back_as_written(store: Store) -> None:
    written = run("r1", tags=["prod", "ünï"], metadata={"k": "v"}, environment={"HOME": "/root"}, host="h",
                  pid=42, pid_started=1.5, warnings=["w"], exit_code=0, total_steps=2, completed_steps=2)
    store.write([NewRun(written)])
    assert store.get_run("r1") == written
    assert store.get_run("nope") is None


def test_changes_set_only_the_fields_they_name_and_merge_in_order(store: Store) -> None:
    store.write([NewRun(run("r1", status="running", metadata={"a": 1}))])
    first = RunChange("r1", status="failed", error_message="boom")
    first.merge(RunChange("r1", error_message=None, completed_steps=3))
    assert first.changes() == {"status": "failed", "error_message": None, "completed_steps": 3}
    assert "exit_code" not in first.changes()
    store.write([first])
    got = store.get_run("r1")
    assert got is not None
    assert (got.status, got.error_message, got.completed_steps, got.metadata) == ("failed", None, 3, {"a": 1})


def test_steps_in_order_with_their_changes(store: Store) -> None:
    store.write([NewRun(run("r1")), NewStep(step("s1", "r1", 1)), NewStep(step("s0", "r1", 0, status="running"))])
    store.write([StepChange("s0", status="failed", error_message="bad", metadata={"x": "y"}, peak_rss=7)])
    steps = store.steps("r1")
    assert [s.id for s in steps] == ["s0", "s1"]
    assert (steps[0].status, steps[0].error_message, steps[0].metadata, steps[0].peak_rss) == ("failed", "bad",
                                                                                              {"x": "y"}, 7)
    assert store.steps("other") == []


def test_artifacts_read_back(store: Store) -> None:
    art = Artifact(id="a1", execution_id="r1", name="report.txt", file_path="/s/a1", created_at="t", step_id="s0",
                   file_size=12, sha256="ab" * 32, tags=[], metadata={}, source_path="report.txt")
    store.write([NewRun(run("r1")), NewArtifact(art)])
    assert store.artifacts("r1") == [art]


def test_log_blocks_come_back_as_lines_filtered(store: Store) -> None:
    store.write([
        NewRun(run("r1")),
        LogBlock("r1", None, 1, 0, 2, T0, b"one\ntwo"),
        LogBlock("r1", 0, 2, 2, 1, T0 + 1, b"err three", cut=5),
        LogBlock("r1", 0, 1, 3, 3, T0 + 2, b"four\nfive\nsix"),
        LogBlock("r2", 0, 1, 0, 1, T0, b"other run"),
    ])
    every = list(store.log_lines("r1"))
    assert [(x.number, x.text) for x in every] == [(0, b"one"), (1, b"two"), (2, b"err three"), (3, b"four"),
                                                     (4, b"five"), (5, b"six")]
    assert every[2].cut == 5 and every[2].stream == 2 and every[2].step_index == 0
    assert [x.number for x in store.log_lines("r1", after_line=3)] == [4, 5]
    assert [x.text for x in store.log_lines("r1", step_index=0, stream=1)] == [b"four", b"five", b"six"]
    assert [x.text for x in store.log_lines("r1", grep=b"f")] == [b"four", b"five"]


def test_a_batch_is_all_or_nothing(store: Store) -> None:
    store.write([NewRun(run("r1"))])
    with pytest.raises(StoreError):
        store.write([NewRun(run("r2")), NewRun(run("r3", command=None))])  # the second one is refused
    assert store.get_run("r2") is None and store.get_run("r3") is None


def test_a_batch_applied_again_never_duplicates(store: Store) -> None:
    # A writer retries a batch whose commit it could not confirm: SQLite refuses the second
    # copy, PostgreSQL (a network between) takes it as the retry it is. Never two rows.
    batch = [NewRun(run("r1")), NewStep(step("s1", "r1", 0)),
             LogBlock("r1", 0, 1, 0, 2, T0, b"one\ntwo")]
    store.write(batch)
    try:
        store.write(batch)
    except StoreError:
        pass
    assert [r.id for r in store.find_runs()] == ["r1"]
    assert [s.id for s in store.steps("r1")] == ["s1"]
    assert [x.text for x in store.log_lines("r1")] == [b"one", b"two"]


def test_queries_filter_order_and_limit(store: Store) -> None:
    store.write([
        NewRun(run("a", name="deploy-web", status="failed", tags=["prod"], created_ts=T0 + 1)),
        NewRun(run("b", name="deploy-api", status="completed", tags=["staging"], created_ts=T0 + 2)),
        NewRun(run("c", name="backup", status="failed", tags=["prod", "nightly"], created_ts=T0 + 3)),
        NewRun(run("d", name="deploy-web", status="running", tags="not json [", created_ts=T0 - 100)),
    ])

    def ids(**query: object) -> list[str]:
        return [r.id for r in store.find_runs(RunQuery(**query))]  # type: ignore[arg-type]

    assert ids() == ["c", "b", "a", "d"]
    assert ids(status="failed") == ["c", "a"]
    assert ids(name_glob="deploy*") == ["b", "a", "d"]
    assert ids(name_glob="deploy-web") == ["a", "d"]
    assert ids(name_glob="deploy-?eb") == ["a", "d"]
    assert ids(tag="prod") == ["c", "a"]
    assert ids(since_ts=T0) == ["c", "b", "a"]
    assert ids(limit=2) == ["c", "b"]
    assert ids(limit=2, offset=1) == ["b", "a"] and ids(offset=3) == ["d"]
    assert ids(status="failed", name_glob="deploy*", tag="prod", since_ts=T0, limit=5) == ["a"]
    assert store.job_counts() == {"deploy-web": 2, "deploy-api": 1, "backup": 1}
    store.write([LogBlock("c", None, 1, 0, 2, T0, b"a\nb"), LogBlock("c", None, 2, 2, 1, T0, b"c")])
    assert (store.stored_lines("c"), store.stored_lines("a")) == (3, 0)


def test_status_counts_and_run_outcomes_for_statistics(store: Store) -> None:
    store.write([
        NewRun(run("a", name="deploy", status="failed", created_ts=T0 + 1)),
        NewRun(run("b", name="deploy", status="completed", created_ts=T0 + 2, started_at="2025-06-15T12:00:00+00:00",
                   completed_at="2025-06-15T12:01:30+00:00")),
        NewRun(run("c", name="backup", status="running", created_ts=T0 + 3, started_at="2025-06-15T12:00:00+00:00")),
    ])
    assert store.status_counts() == {"failed": 1, "completed": 1, "running": 1}
    rows = store.run_outcomes()
    assert [(r.name, r.status) for r in rows] == [("backup", "running"), ("deploy", "completed"), ("deploy", "failed")]
    assert rows[0].seconds is None and rows[0].completed_ts is None and rows[0].created_ts == T0 + 3
    assert rows[1].seconds == pytest.approx(90.0, abs=0.01)
    assert rows[1].completed_ts == pytest.approx(datetime.fromisoformat("2025-06-15T12:01:30+00:00").timestamp(), abs=0.01)
    assert [r.status for r in store.run_outcomes(RunQuery(name_glob="deploy", since_ts=T0 + 2))] == ["completed"]
    assert [r.status for r in store.run_outcomes(RunQuery(status="failed"))] == ["failed"]
def test_runs_of_one_host_and_the_row_counts(store: Store) -> None:
    store.write([
        NewRun(run("a", host="web-1", created_ts=T0 + 1)),
        NewRun(run("b", host="web-2", created_ts=T0 + 2)),
        NewRun(run("c", host="web-1", status="failed", created_ts=T0 + 3)),
        NewRun(run("d", host=None, created_ts=T0 + 4)),  # a legacy row: no host recorded
        NewStep(step("s1", "a", 0)),
        LogBlock("a", 0, 1, 0, 3, T0, b"x\ny\nz"),
    ])
    assert [r.id for r in store.find_runs(RunQuery(host="web-1"))] == ["c", "a"]
    assert [r.id for r in store.find_runs(RunQuery(host="web-1", status="failed"))] == ["c"]
    assert store.find_runs(RunQuery(host="web-")) == []  # a name, not a prefix
    assert store.counts() == {"executions": 4, "steps": 1, "artifacts": 0, "logs": 1, "log_lines": 3}


def test_runs_with_prefix_and_step_durations(store: Store) -> None:
    store.write([
        NewRun(run("abcd-1", created_ts=T0)), NewRun(run("abcd-2", created_ts=T0 + 1)),
        NewRun(run("abce-3", status="failed", created_ts=T0 + 2)),
        NewStep(step("s1", "abcd-2", 0, name="build", started_at="2025-06-15T12:00:00+00:00",
                     completed_at="2025-06-15T12:00:30+00:00")),
    ])
    assert [r.id for r in store.runs_with_prefix("ABCD", limit=5)] == ["abcd-1", "abcd-2"]
    assert [r.id for r in store.runs_with_prefix("abc", limit=2)] == ["abcd-1", "abcd-2"]
    assert store.runs_with_prefix("zz", limit=5) == []
    rows = store.step_durations("nightly", runs=5)
    assert [(r.run_id, r.name) for r in rows] == [("abcd-2", "build"), ("abcd-1", None)]  # newest completed first
    assert rows[0].seconds == pytest.approx(30.0, abs=0.01)


def test_mark_abandoned_changes_only_open_runs(store: Store) -> None:
    store.write([NewRun(run("open", status="running")), NewRun(run("done", status="completed")),
                 NewRun(run("waiting", status="pending", error_message="kept"))])
    assert store.mark_abandoned(["open", "done", "waiting", "missing"], message="gone") == 2
    statuses = {r.id: (r.status, r.error_message) for r in store.find_runs()}
    assert statuses == {"open": ("abandoned", "gone"), "done": ("completed", None), "waiting": ("abandoned", "kept")}


def test_watch_wakes_a_waiter_on_a_commit_by_another_connection(store: Store, opener: Callable[[], Store]) -> None:
    store.write([NewRun(run("r1", status="running"))])
    watch = store.watch()
    try:
        cursor = watch.cursor()
        assert watch.wait(cursor, 0.2) == cursor  # nothing committed: the cursor stays
        other = opener()
        other.write([LogBlock("r1", None, 1, 0, 1, T0, b"hello")])
        assert watch.wait(cursor, WAIT) != cursor
    finally:
        watch.close()


def test_watch_wakes_every_waiter_on_a_commit_by_another_process(store: Store, settings: Settings) -> None:
    store.write([NewRun(run("r1", status="running"))])
    watch = store.watch()
    cursor = watch.cursor()
    woken: list[int] = []
    waiters = [threading.Thread(target=lambda: woken.append(watch.wait(cursor, WAIT))) for _ in range(5)]
    try:
        for t in waiters:
            t.start()
        code = ("import sys\nfrom stepflow.config import load_settings\n"
                "from stepflow.store import RunChange, open_store\n"
                "s = open_store(load_settings(database=sys.argv[1]))\n"
                "s.write([RunChange('r1', status='completed')])\ns.close()\n")
        subprocess.run([sys.executable, "-c", code, settings.database_url.text], check=True,
                       env={"STEPFLOW_STORAGE_PATH": str(settings.storage), "PATH": "/usr/bin:/bin"})
        for t in waiters:
            t.join(WAIT + 5)
        assert len(woken) == 5 and cursor not in woken
    finally:
        watch.close()


def test_delete_runs_removes_old_finished_runs_with_everything_they_own(store: Store) -> None:
    store.write([
        NewRun(run("old-done", created_ts=T0 - 1000)), NewRun(run("old-failed", status="failed", created_ts=T0 - 900)),
        NewRun(run("old-running", status="running", created_ts=T0 - 2000)), NewRun(run("new", created_ts=T0 + 10)),
        NewStep(step("s1", "old-done", 0)), NewStep(step("s2", "new", 0)),
        LogBlock("old-done", 0, 1, 0, 3, T0, b"a\nb\nc"),
        NewArtifact(Artifact(id="a1", execution_id="old-done", name="x", file_path="/x", created_at="t")),
    ])
    planned = list(store.delete_runs(before_ts=T0, dry_run=True, batch=1))
    assert sorted(i for d in planned for i in d.run_ids) == ["old-done", "old-failed"]
    assert (sum(d.runs for d in planned), sum(d.steps for d in planned), sum(d.log_lines for d in planned),
            sum(d.artifacts for d in planned)) == (2, 1, 3, 1)
    assert len(store.find_runs()) == 4  # a dry run changes nothing
    only_failed = list(store.delete_runs(before_ts=T0, status="failed"))
    assert [d.run_ids for d in only_failed] == [["old-failed"]] and only_failed[0].runs == 1
    done = list(store.delete_runs(before_ts=T0))
    assert isinstance(done[0], Deleted) and sum(d.runs for d in done) == 1
    assert sorted(r.id for r in store.find_runs()) == ["new", "old-running"]
    assert store.steps("old-done") == [] and list(store.log_lines("old-done")) == []
    assert store.artifacts("old-done") == [] and [s.id for s in store.steps("new")] == ["s2"]


def test_health_and_optimize_answer_through_the_protocol(store: Store) -> None:
    store.write([NewRun(run("r1"))])
    found = store.health()
    assert isinstance(found, Health) and found.problems == [] and found.checks
    assert isinstance(store.optimize(), dict)
    assert store.get_run("r1") is not None


def test_a_read_only_store_reads_and_refuses_writes(store: Store, settings: Settings) -> None:
    store.write([NewRun(run("r1"))])
    reader = open_store(settings, readonly=True)
    try:
        assert [r.id for r in reader.find_runs()] == ["r1"]
        with pytest.raises(StoreError):
            reader.write([NewRun(run("r2"))])
    finally:
        reader.close()


def test_a_spooled_batch_is_applied_exactly_once(store: Store) -> None:
    batch = [NewRun(run("sp", created_ts=T0)), LogBlock("sp", None, 1, 0, 2, T0, b"a\nb"),
             RunChange("sp", status="completed", line_count=2)]
    assert store.apply_spooled("sp", 0, batch) is True
    assert store.apply_spooled("sp", 0, batch) is False  # replayed again: nothing changes
    assert [(r.status, r.line_count) for r in store.find_runs(RunQuery())] == [("completed", 2)]
    assert [line.text for line in store.log_lines("sp")] == [b"a", b"b"]

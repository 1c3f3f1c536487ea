"""The Store contract, through the protocol alone, on SQLite (the reference) and on a real PostgreSQL.

Every check here runs on both backends: what SQLite does is what PostgreSQL must do. Checks
only PostgreSQL can fail (a retried batch, NUL in a name, LISTEN) are marked so. The server
is tests/pgserver.py's (a fresh database per test); without one, the PostgreSQL half skips
saying why.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepflow.config import load_settings
from stepflow.errors import StoreError
from stepflow.store import (
    Artifact,
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
    parse_url,
)

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, storage: Path) -> str:
    if request.param == "sqlite":
        return str(storage / "database" / "stepflow.db")
    return str(request.getfixturevalue("pg_url"))


def opened(url: str, *, appending: bool = False) -> Store:
    return open_store(load_settings(), url=parse_url(url), appending=appending)


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = opened(url, appending=True)
    yield s
    s.close()


def run(i: int, **fields: object) -> Run:
    values: dict[str, object] = {"id": f"{i:08x}-0000-4000-8000-000000000000", "name": f"job{i}",
                                 "command": f"echo {i}", "status": "completed",
                                 "created_at": f"2026-01-01T00:00:{i % 60:02d}+00:00", "created_ts": 1000.0 + i}
    values.update(fields)
    return Run(**values)  # type: ignore[arg-type]


def step(r: Run, index: int, **fields: object) -> Step:
    values: dict[str, object] = {"id": f"{r.id}-s{index}", "execution_id": r.id, "name": f"step{index}",
                                 "step_index": index, "status": "completed", "created_at": r.created_at}
    values.update(fields)
    return Step(**values)  # type: ignore[arg-type]


def ids(runs: list[Run]) -> list[str]:
    return [r.id[:8] for r in runs]


def test_a_run_comes_back_as_written(store: Store) -> None:
    r = run(1, environment={"HOME": "/root"}, tags=["nightly", "é"], metadata={"k": [1, 2]}, warnings=["w"],
            host="web-1", pid=42, pid_started=12.5, cpu_seconds=0.25, peak_rss=2**40, max_processes=3,
            working_directory="/tmp", user_name="ops", exit_code=0, started_at="2026-01-01T00:00:01+00:00")
    s = step(r, 0, stop_on_error=True, metadata={"a": "b"}, estimated_duration=1.5, description="d")
    a = Artifact(id="a1", execution_id=r.id, name="report", file_path="/x/report", created_at=r.created_at,
                 step_id=s.id, file_size=10, tags=["t"], is_public=False, sha256="ab", source_path="/src")
    store.write([NewRun(r), NewStep(s), NewArtifact(a)])
    assert store.get_run(r.id) == r
    assert store.steps(r.id) == [s]
    assert store.artifacts(r.id) == [a]
    assert store.get_run("nope") is None


def test_changes_set_only_the_fields_given(store: Store) -> None:
    r = run(1, status="running", error_message="kept")
    s = step(r, 0, status="running")
    store.write([NewRun(r), NewStep(s)])
    store.write([RunChange(r.id, status="failed", exit_code=3, metadata={"m": 1}, line_count=7),
                 StepChange(s.id, status="failed", completed_at="2026-01-01T00:00:09+00:00")])
    got = store.get_run(r.id)
    assert got is not None
    assert (got.status, got.exit_code, got.metadata, got.line_count, got.error_message) == ("failed", 3, {"m": 1}, 7,
                                                                                            "kept")
    assert store.steps(r.id)[0].status == "failed"
    assert store.steps(r.id)[0].completed_at == "2026-01-01T00:00:09+00:00"


def test_find_runs_newest_first_with_ties_in_write_order(store: Store) -> None:
    store.write([NewRun(run(i)) for i in range(5)])
    store.write([NewRun(run(10, created_ts=1003.0)), NewRun(run(11, created_ts=None)),  # time from created_at
                 NewRun(run(12, created_ts=None, created_at="not a time"))])  # no time at all: last
    got = ids(store.find_runs())
    assert got == ["0000000b", "00000004", "0000000a", "00000003", "00000002", "00000001", "00000000", "0000000c"]
    assert store.get_run(run(11).id).created_ts == pytest.approx(1767225611.0)  # type: ignore[union-attr]
    assert ids(store.find_runs(RunQuery(limit=3))) == ["0000000b", "00000004", "0000000a"]
    assert ids(store.find_runs(RunQuery(since_ts=1003.0))) == ["0000000b", "00000004", "0000000a", "00000003"]


def test_find_runs_by_status_name_glob_and_tag(store: Store) -> None:
    store.write([
        NewRun(run(1, name="deploy-web", tags=["nightly", "prod"])),
        NewRun(run(2, name="deploy-db", status="failed", tags=["prod"])),
        NewRun(run(3, name="Deploy", tags="not json [\"prod\"]")),  # legacy text: no tag, no error
        NewRun(run(4, name="backup*", tags=["nightlyx"])),
        NewRun(run(5, name="a.b", tags=[1, "prod"])),
        NewRun(run(6, name="a+b", tags={"prod": True})),
        NewRun(run(7, name="esc", tags='["\\u006eightly", "x\\"y"]')),  # legacy JSON with escapes
    ])
    assert ids(store.find_runs(RunQuery(status="failed"))) == ["00000002"]
    assert ids(store.find_runs(RunQuery(name_glob="deploy*"))) == ["00000002", "00000001"]  # case-sensitive
    assert ids(store.find_runs(RunQuery(name_glob="deploy-??"))) == ["00000002"]
    assert ids(store.find_runs(RunQuery(name_glob="deploy-[w]*"))) == ["00000001"]
    assert ids(store.find_runs(RunQuery(name_glob="deploy-[^w]*"))) == ["00000002"]
    assert ids(store.find_runs(RunQuery(name_glob="[Dd]eploy"))) == ["00000003"]
    assert ids(store.find_runs(RunQuery(name_glob="a.b"))) == ["00000005"]  # no wildcard: the exact name
    assert ids(store.find_runs(RunQuery(name_glob="a?b"))) == ["00000006", "00000005"]
    assert ids(store.find_runs(RunQuery(name_glob="backup[*]"))) == ["00000004"]
    assert ids(store.find_runs(RunQuery(tag="prod"))) == ["00000005", "00000002", "00000001"]
    assert ids(store.find_runs(RunQuery(tag="nightly"))) == ["00000007", "00000001"]
    assert ids(store.find_runs(RunQuery(tag='x"y'))) == ["00000007"]
    assert ids(store.find_runs(RunQuery(tag="prod", status="failed", name_glob="deploy*"))) == ["00000002"]


def test_runs_with_prefix_by_id(store: Store) -> None:
    store.write([NewRun(run(0xABC0)), NewRun(run(0xABC1)), NewRun(run(0xABD0))])
    assert ids(store.runs_with_prefix("0000ABC", limit=5)) == ["0000abc0", "0000abc1"]
    assert ids(store.runs_with_prefix("0000abc", limit=1)) == ["0000abc0"]
    assert store.runs_with_prefix("", limit=5) == []
    assert store.runs_with_prefix("zz", limit=5) == []


def test_log_lines_filters(store: Store) -> None:
    r = run(1)
    store.write([NewRun(r),
                 LogBlock(r.id, None, 1, 0, 1, 1.0, b"before any step"),
                 LogBlock(r.id, 0, 1, 1, 3, 2.0, b"alpha\nbeta\ngamma"),
                 LogBlock(r.id, 0, 2, 4, 1, 3.0, b"oops alpha", cut=12),
                 LogBlock(r.id, 1, 1, 5, 2, 4.0, b"\xff\x00bytes\n")])
    lines = list(store.log_lines(r.id))
    assert [(x.number, x.step_index, x.stream, x.text, x.cut) for x in lines] == [
        (0, None, 1, b"before any step", 0), (1, 0, 1, b"alpha", 0), (2, 0, 1, b"beta", 0), (3, 0, 1, b"gamma", 0),
        (4, 0, 2, b"oops alpha", 12), (5, 1, 1, b"\xff\x00bytes", 0), (6, 1, 1, b"", 0)]
    assert [x.ts for x in lines][:2] == [1.0, 2.0]
    assert [x.number for x in store.log_lines(r.id, step_index=0)] == [1, 2, 3, 4]
    assert [x.number for x in store.log_lines(r.id, stream=2)] == [4]
    assert [x.number for x in store.log_lines(r.id, grep=b"alpha")] == [1, 4]
    assert [x.number for x in store.log_lines(r.id, grep=b"\x00by")] == [5]
    assert [x.number for x in store.log_lines(r.id, after_line=2)] == [3, 4, 5, 6]
    assert [x.number for x in store.log_lines(r.id, after_line=2, grep=b"a", step_index=0)] == [3, 4]
    assert list(store.log_lines("other")) == []


def test_step_durations_of_the_latest_completed_runs(store: Store) -> None:
    old, new, failed, bare = run(1, name="d"), run(2, name="d"), run(3, name="d", status="failed"), run(4, name="e")
    store.write([NewRun(x) for x in (old, new, failed, bare)])
    store.write([
        NewStep(step(old, 0, name="build", started_at="2026-01-01T00:00:00+00:00",
                     completed_at="2026-01-01T00:00:10+00:00")),
        NewStep(step(new, 1, name="test", status="failed", started_at="2026-01-01T00:00:00",
                     completed_at="2026-01-01T00:00:02.5")),
        NewStep(step(new, 0, name="build", started_at="2026-01-01T00:00:00+00:00", completed_at=None)),
        NewStep(step(failed, 0, name="build", started_at="2026-01-01T00:00:00+00:00",
                     completed_at="2026-01-01T00:00:01+00:00")),
    ])
    got = [(d.run_id[:8], d.step_index, d.name, d.status, None if d.seconds is None else round(d.seconds, 3))
           for d in store.step_durations("d")]  # julianday() is exact to about a millisecond
    assert got == [("00000002", 0, "build", "completed", None), ("00000002", 1, "test", "failed", 2.5),
                   ("00000001", 0, "build", "completed", 10.0)]
    assert [(d.run_id[:8], d.name) for d in store.step_durations("d", runs=1)] == [("00000002", "build"),
                                                                                  ("00000002", "test")]
    assert [(d.run_id[:8], d.step_index, d.name) for d in store.step_durations("e")] == [("00000004", None, None)]


def test_mark_abandoned_only_changes_open_runs(store: Store) -> None:
    store.write([NewRun(run(1, status="running")), NewRun(run(2, status="pending", error_message="own")),
                 NewRun(run(3, status="completed"))])
    all_ids = [run(i).id for i in (1, 2, 3)]
    assert store.mark_abandoned(all_ids, message="gone") == 2
    got = {r.id[:8]: (r.status, r.error_message) for r in store.find_runs()}
    assert got == {"00000001": ("abandoned", "gone"), "00000002": ("abandoned", "own"),
                   "00000003": ("completed", None)}
    assert store.mark_abandoned(all_ids, message="gone") == 0
    assert store.mark_abandoned([], message="gone") == 0


def test_delete_runs_in_batches_never_an_open_one(store: Store) -> None:
    runs = [run(i, status="failed" if i % 2 else "completed") for i in range(7)]
    runs.append(run(7, status="running", created_ts=1.0))
    store.write([NewRun(r) for r in runs])
    store.write([NewStep(step(runs[0], 0)), LogBlock(runs[0].id, 0, 1, 0, 3, 1.0, b"a\nb\nc"),
                 NewArtifact(Artifact(id="a0", execution_id=runs[0].id, name="f", file_path="/f", created_at="x"))])
    dry = list(store.delete_runs(before_ts=1004.0, dry_run=True, batch=2))
    assert [len(d.run_ids) for d in dry] == [2, 2]
    assert (dry[0].runs, dry[0].steps, dry[0].log_lines, dry[0].artifacts) == (2, 1, 3, 1)
    assert len(store.find_runs()) == 8
    failed = list(store.delete_runs(before_ts=1004.0, status="failed", batch=10))
    assert [d.runs for d in failed] == [2]
    done = list(store.delete_runs(before_ts=1004.0, batch=1))
    assert [d.runs for d in done] == [1, 1]
    assert done[0].steps == 1 and done[0].log_lines == 3 and done[0].artifacts == 1
    assert sorted(ids(store.find_runs())) == ["00000004", "00000005", "00000006", "00000007"]
    assert list(store.log_lines(runs[0].id)) == [] and store.steps(runs[0].id) == []


def test_health_and_optimize(store: Store) -> None:
    store.write([NewRun(run(1))])
    found = store.health()
    assert found.problems == []
    assert found.checks["integrity"] == "ok"
    assert found.checks["schema_version"] >= 1
    assert isinstance(store.optimize(), dict)
    assert store.find_runs()[0].id == run(1).id


def test_a_watch_wakes_on_a_commit_by_another_connection(url: str, store: Store) -> None:
    store.write([NewRun(run(1, status="running"))])
    watch = store.watch()
    try:
        cursor = watch.cursor()
        assert watch.wait(cursor, 0.05) == cursor  # nothing committed: the timeout passes
        other = opened(url)
        woke: list[int] = []
        waiter = threading.Thread(target=lambda: woke.append(watch.wait(cursor, 60)))
        waiter.start()
        other.write([RunChange(run(1).id, line_count=1)])
        waiter.join(90)
        other.close()
        assert woke and woke[0] != cursor
    finally:
        watch.close()


def test_a_second_open_of_a_current_store_applies_nothing(url: str, store: Store) -> None:
    store.write([NewRun(run(1))])
    again = opened(url)
    try:
        assert again.get_run(run(1).id) is not None
        assert again.health().checks["schema_version"] == store.health().checks["schema_version"]
    finally:
        again.close()


# -- PostgreSQL only ------------------------------------------------------------------------


@pytest.fixture
def pg(pg_url: str) -> Iterator[Store]:
    s = opened(pg_url, appending=True)
    yield s
    s.close()


def test_postgres_a_retried_batch_never_duplicates(pg: Store) -> None:
    r = run(1)
    batch = [NewRun(r), NewStep(step(r, 0)), LogBlock(r.id, 0, 1, 0, 2, 1.0, b"a\nb"),
             NewArtifact(Artifact(id="a1", execution_id=r.id, name="f", file_path="/f", created_at="x"))]
    pg.write(batch)
    pg.write(batch)  # as the writer does after a lost acknowledgement
    assert len(pg.find_runs()) == 1 and len(pg.steps(r.id)) == 1 and len(pg.artifacts(r.id)) == 1
    assert [x.text for x in pg.log_lines(r.id)] == [b"a", b"b"]


def test_postgres_text_it_cannot_hold_is_stored_not_refused(pg: Store) -> None:
    r = run(1, name="nul\x00name", command="bad \udcff byte", metadata={"k": "v\x00"})
    pg.write([NewRun(r)])
    got = pg.get_run(r.id)
    assert got is not None
    assert (got.name, got.command) == ("nul\ufffdname", "bad \ufffd byte")
    assert got.metadata == {"k": "v\x00"}  # JSON escapes NUL itself: kept exactly


def test_postgres_concurrent_first_opens_migrate_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[Store] = []

    def open_one() -> None:
        try:
            stores.append(opened(pg_url))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    rows = stores[0].conn.execute("SELECT version, name FROM stepflow_migrations ORDER BY version").fetchall()  # type: ignore[attr-defined]
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)) and len(rows) >= 2
    for s in stores:
        s.close()


def test_postgres_tables_answer_sqlite_questions(pg: Store) -> None:
    pg.write([NewRun(run(1)), NewRun(run(2))])
    conn = pg.conn  # type: ignore[attr-defined]
    assert conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0] == 2
    cols = {r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns"
                                       " WHERE table_name = 'executions'").fetchall()}
    assert {"id", "name", "command", "status", "created_at", "tags", "metadata", "created_ts", "host"} <= cols


def test_postgres_a_newer_schema_is_refused(pg_url: str, pg: Store) -> None:
    pg.conn.execute("INSERT INTO stepflow_migrations (version, name) VALUES (999, 'future')")  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match="newer than this stepflow"):
        opened(pg_url)


def test_postgres_watch_listens_instead_of_polling(pg_url: str, pg: Store, pg_server: object) -> None:
    """While it waits, the Watch's connection has sent nothing but LISTEN: it is woken, not polling."""
    watch = pg.watch()
    try:
        cursor = watch.cursor()
        for n in range(3):
            other = opened(pg_url)
            other.write([NewRun(run(n))])
            other.close()
            cursor = watch.wait(cursor, 60)
        rows = pg.conn.execute(  # type: ignore[attr-defined]
            "SELECT query FROM pg_stat_activity WHERE application_name = 'stepflow-watch'").fetchall()
        assert [r[0] for r in rows] == ["LISTEN stepflow_changes"]
    finally:
        watch.close()


def test_postgres_tag_filter_under_a_parallel_plan(pg: Store) -> None:
    """The tag test may not run in a parallel worker (its EXCEPTION block needs a subtransaction)."""
    pg.write([NewRun(run(i, tags=["prod"] if i % 2 else "legacy, not json")) for i in range(50)])
    pg.conn.execute("SET force_parallel_mode = on")  # type: ignore[attr-defined]
    pg.conn.execute("SET parallel_setup_cost = 0")  # type: ignore[attr-defined]
    assert len(pg.find_runs(RunQuery(tag="prod"))) == 25


def test_postgres_globs_match_as_sqlite_glob_does(pg: Store) -> None:
    """Every pattern of up to 3 characters over `a*?[]^-.\\` against every name of up to 3 over
    `a-]^[.\\`: PostgreSQL's regex (queries.glob_regex) answers as SQLite's GLOB."""
    import itertools

    import apsw

    from stepflow.store.postgres.queries import glob_regex

    def words(alphabet: str, size: int) -> list[str]:
        return ["".join(w) for n in range(1, size + 1) for w in itertools.product(alphabet, repeat=n)]

    patterns, names = words("a*?[]^-.\\", 3), words("a-]^[.\\", 3)
    pairs = [(p, n) for p in patterns for n in names]
    sqlite = apsw.Connection(":memory:")
    want = [bool(sqlite.execute("SELECT ? GLOB ?", (n, p)).fetchone()[0]) for p, n in pairs]  # type: ignore[index]
    got = [r[0] for r in pg.conn.execute(  # type: ignore[attr-defined]
        "SELECT n ~ r FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS t(n, r, i) ORDER BY i",
        ([n for _, n in pairs], [glob_regex(p) for p, _ in pairs])).fetchall()]
    wrong = [(p, n, w) for (p, n), w, g in zip(pairs, want, got, strict=True) if w != g]
    assert wrong[:10] == []

"""The PostgreSQL backend beyond the shared contract (tests/test_store_contract.py runs that on both).

A few checks still run on SQLite too (ties in write order, a second open), the reference for
what PostgreSQL must do; the rest are what only PostgreSQL can fail (a retried batch, NUL in a
name, concurrent first opens, LISTEN, a parallel plan, globs). The server
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


def test_find_runs_newest_first_with_ties_in_write_order(store: Store) -> None:
    store.write([NewRun(run(i)) for i in range(5)])
    store.write([NewRun(run(10, created_ts=1003.0)), NewRun(run(11, created_ts=None)),  # time from created_at
                 NewRun(run(12, created_ts=None, created_at="not a time"))])  # no time at all: last
    got = ids(store.find_runs())
    assert got == ["0000000b", "00000004", "0000000a", "00000003", "00000002", "00000001", "00000000", "0000000c"]
    assert store.get_run(run(11).id).created_ts == pytest.approx(1767225611.0)  # type: ignore[union-attr]
    assert ids(store.find_runs(RunQuery(limit=3))) == ["0000000b", "00000004", "0000000a"]
    assert ids(store.find_runs(RunQuery(since_ts=1003.0))) == ["0000000b", "00000004", "0000000a", "00000003"]


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


def test_postgres_a_batch_partly_stored_gets_the_rest(pg: Store) -> None:
    """Big batches of output go in by COPY, which refuses a line the store has: a batch half of
    which is stored (its first try committed unanswered) is applied again skipping those, at once."""
    r = run(1)
    big = [b"%d" % n + b"x" * 70_000 for n in range(4)]  # each block alone past COPY_MIN
    pg.write([NewRun(r), LogBlock(r.id, None, 1, 0, 1, 1.0, big[0])])
    pg.write([LogBlock(r.id, None, 1, 0, 1, 1.0, big[0]), LogBlock(r.id, None, 2, 1, 1, 1.0, big[1]),
              RunChange(r.id, line_count=2)])
    assert [(x.number, x.stream, x.text) for x in pg.log_lines(r.id)] == [(0, 1, big[0]), (1, 2, big[1])]
    got = pg.get_run(r.id)
    assert got is not None and got.line_count == 2
    # the same from the spool: the batch is recorded as applied, its lines are not stored twice
    assert pg.apply_spooled(r.id, 1, [LogBlock(r.id, None, 2, 1, 1, 1.0, big[1]),
                                      LogBlock(r.id, None, 1, 2, 1, 1.0, big[2])]) is True
    assert [x.text for x in pg.log_lines(r.id)] == big[:3]
    assert pg.apply_spooled(r.id, 1, [LogBlock(r.id, None, 1, 3, 1, 1.0, big[3])]) is False


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


def test_postgres_status_counts_and_run_outcomes_ahead_of_main(pg: Store) -> None:
    """main's protocol has status_counts and run_outcomes (its contract suite checks them on
    every backend once merged); here, that PostgreSQL answers them as SQLite's julianday does."""
    pg.write([NewRun(run(1, status="failed", started_at="2026-01-01T00:00:00", completed_at="2026-01-01T00:00:02.5")),
              NewRun(run(2, status="running", started_at="2026-01-01T00:00:00+00:00"))])
    assert pg.status_counts() == {"failed": 1, "running": 1}  # type: ignore[attr-defined]
    newest, oldest = pg.run_outcomes()  # type: ignore[attr-defined]
    assert (newest.status, newest.seconds, newest.completed_ts) == ("running", None, None)
    assert (oldest.name, oldest.seconds, oldest.completed_ts) == ("job1", 2.5, 1767225602.5)
    assert [o.status for o in pg.run_outcomes(RunQuery(status="failed"))] == ["failed"]  # type: ignore[attr-defined]

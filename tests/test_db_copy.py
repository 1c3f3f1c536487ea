"""`stepflow db copy --to URL / --from URL` with the real CLI, against a real PostgreSQL.

A history goes SQLite -> PostgreSQL -> a new SQLite file and comes back row for row; a
StepFlow Monitor store migrated with `migrate --to-wal` goes across whole; copying again adds
nothing; a copy killed inside a batch leaves whole runs only and running it again finishes it;
a run copied while running is brought up to date once it has finished; counts that disagree,
and every bad invocation, end in one `stepflow: error:` line with no traceback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import apsw
import psycopg
import pytest
from conftest import StepflowRunner, query, wait_for

from stepflow.config import load_settings
from stepflow.store import LogBlock, NewRun, NewStep, RunChange, StepChange, open_store, parse_url
from tests import legacy_store

SECRET = "s3cret-Pw"
# Columns a backend numbers for itself: not part of a run, never compared.
LOCAL = {"logs": {"id"}, "executions": {"seq"}, "steps": {"seq"}, "artifacts": {"seq"}}
ORDER = {"executions": "id", "steps": "id", "artifacts": "id", "logs": "execution_id, first_line",
         "spooled": "execution_id, seq"}
SUMMARY = re.compile(r"copied ([\d,]+) runs \(([\d,]+) steps, ([\d,]+) lines, ([\d,]+) artifacts\) from (\S+) to (\S+);"
                     r" ([\d,]+) already there")


def with_password(url: str, password: str = SECRET) -> str:
    scheme, _, rest = url.partition("://")
    user, _, after = rest.partition("@")
    return f"{scheme}://{user}:{password}@{after}"


def text(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stdout.decode() + done.stderr.decode()


def summary(done: subprocess.CompletedProcess[bytes]) -> tuple[int, int, int, int, str, str, int]:
    assert done.returncode == 0, text(done)
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1, lines
    found = SUMMARY.match(lines[0])
    assert found, lines[0]
    g = found.groups()
    n = [int(x.replace(",", "")) for x in (*g[:4], g[6])]
    return n[0], n[1], n[2], n[3], g[4], g[5], n[4]


def sqlite_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table a run owns, each value with its storage class: equal means byte for byte."""
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        out = {}
        for table in ORDER:
            cols = sorted(r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in LOCAL.get(table, ()))
            rows = conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {ORDER[table]}").fetchall()
            out[table] = [tuple((type(v).__name__, v) for v in row) for row in rows]
        return out
    finally:
        conn.close()


def pg_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """As sqlite_rows, PostgreSQL's booleans read as SQLite keeps them (0/1)."""
    out = {}
    with psycopg.connect(url) as conn:
        for table in ORDER:
            cols = sorted(r[0] for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped", (table,)).fetchall() if r[0] not in LOCAL.get(table, ()))
            rows = conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {ORDER[table]}").fetchall()
            norm = [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows]
            out[table] = [tuple((type(v).__name__, v) for v in row) for row in norm]
    return out


def counts_pg(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        got = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ORDER}  # type: ignore[index]
        got["lines"] = conn.execute("SELECT COALESCE(SUM(line_count), 0) FROM logs").fetchone()[0]  # type: ignore[index]
        return got


def counts_sqlite(db: Path) -> dict[str, int]:
    got = {t: int(query(db, f"SELECT COUNT(*) FROM {t}")[0][0]) for t in ORDER}  # type: ignore[call-overload]
    got["lines"] = int(query(db, "SELECT COALESCE(SUM(line_count), 0) FROM logs")[0][0])  # type: ignore[call-overload]
    return got


def record_history(stepflow: StepflowRunner, tmp_path: Path) -> None:
    """Real runs: steps with metadata and errors, an artifact, tags, two hosts, both streams,
    text that is not ASCII and output that is not UTF-8."""
    (tmp_path / "report.txt").write_text("all good\n")
    script = ("echo 'STEP_START:build[duration=12]'; echo 'META:commit:abc123'; echo héllo wörld;"
              " echo warn >&2; echo STEP_COMPLETE:build; echo 'STEP_START:test[stop_on_error=true]';"
              " printf 'raw \\377\\376 bytes\\n'; echo ARTIFACT:report.txt:the report; echo 'META:run_key:v';"
              " echo STEP_START:deploy; echo 'STEP_ERROR:no target'")
    done = stepflow("run", "-o", "quiet", "--name", "nightly", "--tag", "prod", "--tag", "ünï", "--", "bash", "-c",
                    script, env={"STEPFLOW_HOST": "web-1"}, cwd=tmp_path)
    assert done.returncode == 0, text(done)
    for host, code in (("web-2", 3), ("web-3", 0)):
        done = stepflow("run", "-o", "quiet", "--name", f"job-{host}", "--", "bash", "-c",
                        f"echo STEP_START:one; seq 1 250; exit {code}", env={"STEPFLOW_HOST": host})
        assert done.returncode == code, text(done)


def test_round_trip_sqlite_postgres_new_sqlite(stepflow: StepflowRunner, pg_url: str, db_path: Path,
                                               tmp_path: Path) -> None:
    record_history(stepflow, tmp_path)
    before = sqlite_rows(db_path)
    assert len(before["executions"]) == 3 and len(before["artifacts"]) == 1 and before["logs"]

    there = stepflow("db", "copy", "--to", with_password(pg_url))
    runs, steps, lines, artifacts, source, target, already = summary(there)
    want = counts_sqlite(db_path)
    assert (runs, steps, lines, artifacts, already) == (3, want["steps"], want["lines"], 1, 0)
    assert source == f"sqlite:///{db_path}" and target == with_password(pg_url, "***")
    assert SECRET not in text(there)
    assert counts_pg(pg_url) == want

    rows = pg_rows(pg_url)
    for table in ORDER:
        assert rows[table] == before[table], table  # host, tags, metadata, times: the same values

    back = tmp_path / "elsewhere" / "back.db"
    home = stepflow("--database", str(back), "db", "copy", "--from", pg_url)
    assert summary(home)[:4] == (3, want["steps"], want["lines"], 1)
    assert sqlite_rows(back) == before  # every row and column, with its storage class

    # What users see is the same at all three ends.
    shows = [json.loads(stepflow(*where, "show", "last", "--json").stdout)
             for where in ((), ("--database", pg_url), ("--database", str(back)))]
    assert shows[0]["host"] == "web-3" and shows[1] == shows[0] == shows[2]
    listed = [json.loads(stepflow(*where, "ls", "--json").stdout) for where in ((), ("--database", pg_url))]
    assert listed[0] == listed[1] and {tuple(r["tags"] or ()) for r in listed[0]} >= {("prod", "ünï")}
    logs = [stepflow(*where, "logs", listed[0][-1]["id"]).stdout for where in ((), ("--database", pg_url))]
    assert logs[0] == logs[1] and "héllo wörld".encode() in logs[0]


def test_a_runs_artifacts_keep_their_order(stepflow: StepflowRunner, pg_url: str, tmp_path: Path) -> None:
    """`show` lists artifacts as they were announced; their ids are random, so a copy that
    read them by id would put 8 of them in another order all but once in 40,320 times."""
    work = tmp_path / "work"
    work.mkdir()
    script = "; ".join(f"echo {n} > a{n}.txt; echo ARTIFACT:a{n}.txt" for n in range(8))
    assert stepflow("run", "-o", "quiet", "--cwd", str(work), "--", "bash", "-c", script).returncode == 0
    names = [a["name"] for a in json.loads(stepflow("show", "--json").stdout)["artifacts"]]
    assert names == [f"a{n}.txt" for n in range(8)]
    back = tmp_path / "back.db"
    assert stepflow("db", "copy", "--to", pg_url).returncode == 0
    assert stepflow("--database", str(back), "db", "copy", "--from", pg_url).returncode == 0
    for where in (pg_url, str(back)):
        shown = json.loads(stepflow("--database", where, "show", "--json").stdout)["artifacts"]
        assert [a["name"] for a in shown] == names, where


def test_copying_again_adds_nothing(stepflow: StepflowRunner, pg_url: str, db_path: Path, tmp_path: Path) -> None:
    record_history(stepflow, tmp_path)
    assert summary(stepflow("db", "copy", "--to", pg_url))[0] == 3
    first = pg_rows(pg_url)
    again = summary(stepflow("db", "copy", "--to", pg_url))
    assert again[:4] == (0, 0, 0, 0) and again[6] == 3
    as_json = json.loads(stepflow("db", "copy", "--to", with_password(pg_url), "--json").stdout)
    assert as_json == {"source": f"sqlite:///{db_path}", "target": with_password(pg_url, "***"), "runs": 0,
                       "replaced": 0, "already_there": 3, "still_running": 0, "steps": 0, "lines": 0,
                       "artifacts": 0, "log_blocks": 0, "batches": 1, "legacy_zone_recorded": False}
    assert pg_rows(pg_url) == first

    other = tmp_path / "other.db"  # SQLite -> SQLite, where output blocks have no key of their own
    assert summary(stepflow("db", "copy", "--to", str(other)))[0] == 3
    assert summary(stepflow("db", "copy", "--to", f"sqlite:///{other}"))[6] == 3
    assert summary(stepflow("--database", str(other), "db", "copy", "--from", pg_url))[6] == 3
    assert counts_sqlite(other) == counts_sqlite(db_path)
    assert sqlite_rows(other) == sqlite_rows(db_path)

    stepflow("run", "-o", "quiet", "--name", "later", "--", "echo", "new")  # a new run: only it goes
    later = summary(stepflow("db", "copy", "--to", pg_url))
    assert (later[0], later[2], later[6]) == (1, 1, 3)
    assert counts_pg(pg_url) == counts_sqlite(db_path)


def test_migrated_stepflow_monitor_store_copies_whole(stepflow: StepflowRunner, pg_url: str, storage: Path,
                                                      db_path: Path, tmp_path: Path) -> None:
    built = legacy_store.build(storage, executions=80, schema=legacy_store.PREWAL)
    migrated = stepflow("migrate", "--to-wal", "--legacy-tz", "Asia/Shanghai")
    assert migrated.returncode == 0, text(migrated)
    before = sqlite_rows(db_path)
    assert len(before["executions"]) == built["executions"] and before["logs"]

    done = stepflow("db", "copy", "--to", pg_url)
    runs, steps, lines, artifacts, *_ = summary(done)
    assert (runs, steps, artifacts) == (built["executions"], built["steps"], built["artifacts"])
    assert lines == built["log_lines"]
    rows = pg_rows(pg_url)
    for table in ORDER:
        assert rows[table] == before[table], table  # legacy JSON, naive times, statuses kept as they were

    back = tmp_path / "back.db"
    summary(stepflow("--database", str(back), "db", "copy", "--from", pg_url))
    assert sqlite_rows(back) == before
    utc = {"TZ": "UTC"}
    ours = json.loads(stepflow("ls", "--json", "--limit", "1000", env=utc).stdout)
    theirs = json.loads(stepflow("--database", pg_url, "ls", "--json", "--limit", "1000", env=utc).stdout)
    assert [(r["id"], r["status"]) for r in ours] == [(r["id"], r["status"]) for r in theirs]
    assert ours[0]["created_at"].endswith("+08:00")  # naive legacy times, read in the recorded zone

    # SQLite to SQLite: the zone the naive times were written in goes along.
    direct = tmp_path / "direct.db"
    summary(stepflow("db", "copy", "--to", str(direct)))
    assert query(direct, "SELECT value FROM stepflow_meta WHERE key = 'legacy_tz'") == [("Asia/Shanghai",)]
    assert json.loads(stepflow("--database", str(direct), "ls", "--json", "--limit", "1000", env=utc).stdout) == ours


def seed(db: Path, runs: int, *, lines: int = 3) -> list[str]:
    """`runs` finished runs written through the store (one step and `lines` lines each); their ids, sorted."""
    store = open_store(load_settings(), url=parse_url(str(db)))
    ids = []
    try:
        for i in range(runs):
            run_id = f"{i:04d}-{os.urandom(6).hex()}"
            ids.append(run_id)
            store.write([
                NewRun.of({"id": run_id, "name": f"job-{i % 7}", "command": "true", "status": "completed",
                           "created_at": "2026-01-01T00:00:00+00:00", "created_ts": 1767225600.0 + i, "host": "h1",
                           "tags": ["a"], "exit_code": 0}),
                NewStep.of({"id": f"s-{run_id}", "execution_id": run_id, "name": "one", "step_index": 0,
                            "status": "completed", "created_at": "2026-01-01T00:00:00+00:00"}),
                LogBlock(run_id, 0, 1, 0, lines, 1767225600.5, b"\n".join(b"line %d \xff\x00" % n for n in range(lines))),
            ])
    finally:
        store.close()
    return sorted(ids)


def test_killed_inside_a_batch_then_rerun(stepflow: StepflowRunner, pg_url: str, db_path: Path) -> None:
    ids = seed(db_path, 200)
    held = ids[150]  # first run of the fourth batch of 50
    blocker = psycopg.connect(pg_url)
    open_store(load_settings(), url=parse_url(pg_url)).close()  # the schema, so the blocker can write
    # An uncommitted output block of run 150: the copy's insert of that batch's output waits
    # on it (a unique key), after three batches are committed and that batch's runs and steps
    # are written, uncommitted.
    blocker.execute("INSERT INTO logs (execution_id, stream, first_line, line_count, ts, data)"
                    " VALUES (%s, 1, 0, 1, 0, 'x')", (held,))
    copy = subprocess.Popen([sys.executable, "-m", "stepflow", "db", "copy", "--to", pg_url, "--batch", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        watcher = psycopg.connect(pg_url, autocommit=True)

        def copy_waits() -> bool:
            row = watcher.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                  " AND query LIKE 'INSERT INTO logs%'").fetchone()
            return row is not None and row[0] == 1

        assert wait_for(copy_waits, timeout=60), copy.stderr.read1() if copy.poll() is not None else "no wait"  # type: ignore[union-attr]
        os.kill(copy.pid, signal.SIGKILL)
        copy.wait()
        assert copy.returncode == -signal.SIGKILL
    finally:
        if copy.poll() is None:
            copy.kill()
            copy.wait()
        blocker.rollback()
        blocker.close()

    with psycopg.connect(pg_url) as conn:
        def copied() -> list[str]:
            return [r[0] for r in conn.execute("SELECT id FROM executions ORDER BY id").fetchall()]

        # The killed batch's session goes once the server notices; its rows never commit.
        assert wait_for(lambda: conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name ="
                                             " 'stepflow'").fetchone() == (0,), timeout=60)
        assert copied() == ids[:150]  # whole batches only
        assert conn.execute("SELECT COUNT(*), SUM(line_count) FROM logs").fetchone() == (150, 450)
        assert conn.execute("SELECT COUNT(*) FROM steps").fetchone() == (150,)

    rerun = summary(stepflow("db", "copy", "--to", pg_url, "--batch", "50"))
    assert (rerun[0], rerun[2], rerun[6]) == (50, 150, 150)
    assert counts_pg(pg_url) == counts_sqlite(db_path)
    assert pg_rows(pg_url)["logs"] == sqlite_rows(db_path)["logs"]


def test_failed_batch_into_sqlite_is_rolled_back_and_rerun_finishes(stepflow: StepflowRunner, db_path: Path,
                                                                    tmp_path: Path) -> None:
    ids = seed(db_path, 120)
    target = tmp_path / "target.db"
    stepflow("--database", str(target), "db", "stats")  # a new store
    open_store(load_settings(), url=parse_url(str(target))).close()
    conn = apsw.Connection(str(target))
    conn.execute(f"CREATE TRIGGER stop BEFORE INSERT ON logs WHEN NEW.execution_id = '{ids[70]}'"
                 " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    failed = stepflow("db", "copy", "--to", str(target), "--batch", "25")
    assert failed.returncode == 1 and failed.stdout == b""
    assert failed.stderr.decode() == f"stepflow: error: store {target}: disk on fire\n"
    assert [r[0] for r in query(target, "SELECT id FROM executions ORDER BY id")] == ids[:50]
    assert query(target, "SELECT COUNT(*), SUM(line_count) FROM logs") == [(50, 150)]
    conn.execute("DROP TRIGGER stop")
    conn.close()
    rerun = summary(stepflow("db", "copy", "--to", str(target), "--batch", "25"))
    assert (rerun[0], rerun[6]) == (70, 50)
    assert sqlite_rows(target) == sqlite_rows(db_path)  # no output block twice, none lost


def test_run_copied_while_running_gets_its_end_later(stepflow: StepflowRunner, pg_url: str, db_path: Path) -> None:
    store = open_store(load_settings())
    run_id = "run-still-going"
    store.write([
        NewRun.of({"id": run_id, "name": "long", "command": "sleep", "status": "running", "host": "far-away",
                   "pid": 1, "created_at": "2026-01-01T00:00:00+00:00", "created_ts": 1767225600.0}),
        NewStep.of({"id": "s1", "execution_id": run_id, "name": "first", "step_index": 0, "status": "running",
                    "created_at": "2026-01-01T00:00:00+00:00"}),
        LogBlock(run_id, 0, 1, 0, 2, 1767225601.0, b"a\nb"),
    ])
    first = stepflow("db", "copy", "--to", pg_url)
    assert summary(first)[:3] == (1, 1, 2)
    assert first.stdout.decode().rstrip().endswith("; 1 still running at the source: copy again once they finish")
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO logs (execution_id, stream, first_line, line_count, ts, data)"
                     " VALUES (%s, 1, 2, 1, 0, 'only here')", (run_id,))  # written at the target meanwhile
    same = stepflow("db", "copy", "--to", pg_url)  # open at both ends: the target's copy is left alone
    assert summary(same)[0] == 0 and summary(same)[6] == 1
    assert counts_pg(pg_url)["lines"] == 3

    store.write([
        StepChange("s1", status="completed", completed_at="2026-01-01T00:01:00+00:00"),
        NewStep.of({"id": "s2", "execution_id": run_id, "name": "second", "step_index": 1, "status": "completed",
                    "created_at": "2026-01-01T00:01:00+00:00"}),
        LogBlock(run_id, 1, 2, 2, 3, 1767225661.0, b"c\nd\ne"),
        RunChange(run_id, status="completed", exit_code=0, completed_at="2026-01-01T00:02:00+00:00",
                  total_steps=2, completed_steps=2, line_count=5),
    ])
    store.close()
    later = stepflow("db", "copy", "--to", pg_url)
    assert summary(later)[:3] == (1, 2, 5) and summary(later)[6] == 0
    assert "1 brought up to date (finished since the last copy)" in later.stdout.decode()
    assert pg_rows(pg_url) == sqlite_rows(db_path)
    assert summary(stepflow("db", "copy", "--to", pg_url))[:1] == (0,)  # and then nothing more


def test_counts_that_disagree_stop_the_copy(stepflow: StepflowRunner, pg_url: str, db_path: Path) -> None:
    ids = seed(db_path, 3)
    open_store(load_settings(), url=parse_url(pg_url)).close()
    with psycopg.connect(pg_url) as conn:  # a step id the target already has, for another run
        conn.execute("INSERT INTO steps (id, execution_id, name, step_index, status, created_at)"
                     " VALUES (%s, 'someone-else', 'x', 0, 'completed', 'now')", (f"s-{ids[1]}",))
    done = stepflow("db", "copy", "--to", with_password(pg_url))
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr.decode() == (
        f"stepflow: error: copy to {with_password(pg_url, '***')} stopped: counts differ for 1 run(s) after writing"
        f" (run {ids[1]}, steps: 1 at the source, 0 at the target); this batch was rolled back, nothing was copied\n")
    assert counts_pg(pg_url)["executions"] == 0


@pytest.mark.parametrize("case", ["same file", "same server", "missing file", "bad scheme", "bad sqlite url",
                                  "unreachable", "no direction", "both directions", "not a store"])
def test_errors_are_one_line(stepflow: StepflowRunner, pg_url: str, db_path: Path, tmp_path: Path,
                             case: str) -> None:
    seed(db_path, 1)
    secret_pg = with_password(pg_url)
    if case == "same server":
        open_store(load_settings(), url=parse_url(pg_url)).close()
    (tmp_path / "notes.txt").write_text("not a database, just words " * 100)
    cases: dict[str, tuple[tuple[str, ...], int, str]] = {
        "same file": (("db", "copy", "--to", f"sqlite:///{db_path}"), 2,
                      f"sqlite:///{db_path} is both the source and the target; give another store to copy to"),
        "same server": (("--database", pg_url, "db", "copy", "--to", secret_pg.replace("?host", "?application_name=x&host")),
                        2, f"{pg_url} is both the source and the target; give another store to copy to"),
        "missing file": (("db", "copy", "--from", str(tmp_path / "nope.db")), 1,
                         f"no store at {tmp_path / 'nope.db'} to copy from"),
        "bad scheme": (("db", "copy", "--to", f"mysql://u:{SECRET}@db/x"), 2,
                       "--to 'mysql://u:***@db/x': no backend for mysql:// (known: sqlite://, postgresql://, or a file path)"),
        "bad sqlite url": (("db", "copy", "--from", "sqlite://x.db"), 2,
                           "--from 'sqlite://x.db' is not sqlite:///PATH (three slashes, then the file)"),
        "unreachable": (("db", "copy", "--to", f"postgresql://u:{SECRET}@127.0.0.1:1/x"), 1,
                        "store postgresql://u:***@127.0.0.1:1/x: connection failed: connection to server at \"127.0.0.1\","
                        " port 1 failed: Connection refused Is the server running on that host and accepting TCP/IP"
                        " connections?"),
        "no direction": (("db", "copy"), 2,
                         "say which way to copy: --to URL (from this store) or --from URL (into this store)"),
        "both directions": (("db", "copy", "--to", "a.db", "--from", "b.db"), 2,
                            "say which way to copy: --to URL (from this store) or --from URL (into this store)"),
        "not a store": (("db", "copy", "--from", str(tmp_path / "notes.txt")), 1,
                        f"store {tmp_path / 'notes.txt'}: database file is damaged or is not a database"),
    }
    args, status, message = cases[case]
    done = stepflow(*args)
    assert (done.returncode, done.stderr.decode(), done.stdout) == (status, f"stepflow: error: {message}\n", b"")
    assert SECRET not in text(done)


def test_an_older_stepflow_store_is_copied_as_it_is(stepflow: StepflowRunner, db_path: Path, tmp_path: Path) -> None:
    from stepflow.store import schema

    old = tmp_path / "old.db"
    conn = apsw.Connection(str(old))
    schema.apply_migrations(conn, upto=2)  # before output blocks, spooled batches and legacy_status
    conn.execute("INSERT INTO executions (id, name, command, status, created_at, created_ts, host, tags)"
                 " VALUES ('old-run', 'old', 'true', 'completed', '2025-01-01T00:00:00', 1735689600.0, 'h0', '[\"x\"]')")
    conn.execute("INSERT INTO steps (id, execution_id, name, step_index, status, created_at)"
                 " VALUES ('old-step', 'old-run', 'one', 0, 'completed', '2025-01-01T00:00:00')")
    conn.close()
    done = stepflow("db", "copy", "--from", str(old))
    assert summary(done)[:4] == (1, 1, 0, 0)
    assert query(old, "PRAGMA user_version") == [(2,)]  # the source is left as it was
    assert query(db_path, "SELECT id, host, tags, created_ts, legacy_status FROM executions") == [
        ("old-run", "h0", '["x"]', 1735689600.0, None)]
    assert summary(stepflow("db", "copy", "--from", str(old)))[6] == 1


def test_a_big_run_goes_across_in_pieces(stepflow: StepflowRunner, pg_url: str, db_path: Path,
                                         tmp_path: Path) -> None:
    """More output blocks than one insert takes (2,000), and more bytes (8 MiB): several
    inserts in the run's one transaction, none lost, none twice."""
    store = open_store(load_settings())
    writes: list[Any] = [NewRun.of({"id": "big", "name": "big", "command": "x", "status": "completed",
                                    "created_at": "2026-01-01T00:00:00+00:00", "created_ts": 1767225600.0})]
    writes += [LogBlock("big", None, 1 + n % 2, n, 1, 1767225600.0 + n, b"%d" % n) for n in range(4500)]
    writes += [LogBlock("big", None, 1, 4500 + n, 1, 1767229200.0, bytes([n]) * (3 << 20)) for n in range(4)]
    store.write(writes)
    store.close()
    assert summary(stepflow("db", "copy", "--to", pg_url))[:3] == (1, 0, 4504)
    back = tmp_path / "back.db"
    assert summary(stepflow("--database", str(back), "db", "copy", "--from", pg_url))[:3] == (1, 0, 4504)
    assert sqlite_rows(back) == sqlite_rows(db_path)

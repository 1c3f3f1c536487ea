"""PostgreSQL beside SQLite: ingest of one run, a fleet of 100 runs at once, `ls` over 1,000,000 runs.

A real server is started for the run (tests/pgserver.py: initdb in the work folder, a Unix
socket only, fsync=off as the test server has it; SQLite runs with its usual
synchronous=NORMAL in WAL, which does not fsync per commit either). Parts, each with SQLite
measured in the same run, arms round-robin:

  ingest  one `stepflow run --output quiet` of 1,000,000 lines of 80 bytes (a marker every
          10,000), on a fresh empty store each time: lines persisted / wall. Issue 13's goal:
          >= 500,000 lines/s on PostgreSQL and within 1.5x of SQLite.
  fleet   100 `stepflow run --output quiet` at once, 2,000 lines in 5 steps each, from 10
          simulated hosts (STEPFLOW_HOST=host-0..9) into one store: wall time; then every run,
          line, step and host is counted in the store (0 lost, 0 errors is the goal).
  ls      `stepflow ls`, `ls --json` and a filtered `ls` over 1,000,000 runs (the same rows in
          both stores, PostgreSQL's loaded with COPY), minus `stepflow --version`. Goal on
          PostgreSQL: <= 30 ms over --version.

    python benchmarks/bench_postgres.py [ingest|fleet|ls ...] [--runs N] [--quick] [--module]
"""

from __future__ import annotations

import contextlib
import os
import random
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pgserver import PgServer, running_server  # noqa: E402

PARTS = ("ingest", "fleet", "ls")
HOSTS = 10


@contextlib.contextmanager
def server(work: Path) -> Iterator[PgServer]:
    with running_server(work / "pg") as srv:
        yield srv


def template_database(srv: PgServer, name: str = "stepflow_template") -> str:
    """A database with stepflow's schema applied: CREATE DATABASE ... TEMPLATE copies it (as SQLite's arms
    copy an empty store), so no arm pays for the first migration."""
    from stepflow.config import load_settings
    from stepflow.store import open_store, parse_url

    url = srv.create_database(name)
    open_store(load_settings(), url=parse_url(url)).close()
    return name


def fresh_database(srv: PgServer, template: str, name: str) -> str:
    srv.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    srv.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return srv.url(name)


def pg_scalar(srv: PgServer, database: str, sql: str) -> str:
    return srv.psql(sql, database=database).strip()


# -- ingest ----------------------------------------------------------------------------------


def ingest(args: Any, cmd: list[str], work: Path, srv: PgServer, template: str) -> None:
    total = 100_000 if args.quick else 1_000_000
    every = 10_000
    expected = total - common.markers_in(total, every)
    gen = common.gen_argv(common.write_generator(work), total, every)
    sqlite_template, storage = work / "sqlite-template", work / "store"
    common.make_empty_store(sqlite_template)
    print(f"## ingest: one run of {total:,} lines of 80 bytes, a marker every {every:,} ({expected:,} to persist)")
    print(f"command  : {shlex.join(gen)}")
    rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    problems: list[str] = []

    def arm(backend: str) -> float:
        env = common.bench_env(storage)
        common.fresh_store(sqlite_template, storage)
        if backend == "postgresql":
            env["STEPFLOW_DATABASE_URL"] = fresh_database(srv, template, "ingest")
        err = work / f"ingest-{backend}.txt"
        with open(err, "wb") as f:
            r = common.reaped([*cmd, "run", "--output", "quiet", "--", *gen], env=env, stdout=subprocess.DEVNULL,
                              stderr=f)
        if backend == "postgresql":
            lines = int(pg_scalar(srv, "ingest", "SELECT COALESCE(SUM(line_count), 0) FROM logs"))
        else:
            lines = common.query(common.database(storage), "SELECT COALESCE(SUM(line_count), 0) FROM logs")[0][0]
        if r.returncode != 0 or lines != expected:
            problems.append(f"{backend}: exit {r.returncode}, {lines:,} of {expected:,} lines;"
                            f" stderr {err.read_text(errors='replace')[-300:]!r}")
        rates[backend].append(lines / r.wall)
        return r.wall

    walls = common.interleaved({"sqlite": lambda: arm("sqlite"), "postgresql": lambda: arm("postgresql")}, args.runs)
    for name in rates:
        rates[name] = rates[name][-args.runs:]
    sq, pg = common.median(walls["sqlite"]), common.median(walls["postgresql"])
    common.table(["store", "wall s (median)", "min-max", "lines/s persisted (median)", "x SQLite"], [
        ["SQLite (WAL, synchronous=NORMAL)", sq, common.spread(walls["sqlite"]), common.median(rates["sqlite"]), 1.0],
        ["PostgreSQL 15 (Unix socket)", pg, common.spread(walls["postgresql"]), common.median(rates["postgresql"]),
         pg / sq],
    ])
    print("  goal (issue 13): PostgreSQL >= 500,000 lines/s, within 1.5x of SQLite")
    for p in problems:
        common.warn(p)
    if not problems:
        print(f"checked: every run exited 0 and persisted exactly {expected:,} lines")
    print()


# -- fleet -----------------------------------------------------------------------------------


def fleet(args: Any, cmd: list[str], work: Path, srv: PgServer, template: str) -> None:
    procs = 10 if args.quick else 100
    lines, steps = 2_000, 5
    every = lines // steps
    expected_lines = procs * (lines - common.markers_in(lines, every))
    gen = common.gen_argv(common.write_generator(work), lines, every)
    sqlite_template, storage = work / "sqlite-template-fleet", work / "store-fleet"
    common.make_empty_store(sqlite_template)
    print(f"## fleet: {procs} runs at once from {HOSTS} hosts (STEPFLOW_HOST), {lines:,} lines in {steps} steps each")
    found: dict[str, list[str]] = {"sqlite": [], "postgresql": []}

    def arm(backend: str) -> float:
        common.fresh_store(sqlite_template, storage)
        base = common.bench_env(storage)
        if backend == "postgresql":
            base["STEPFLOW_DATABASE_URL"] = fresh_database(srv, template, "fleet")
        errdir = work / f"fleet-{backend}"
        errdir.mkdir(exist_ok=True)
        started = time.perf_counter()
        running = []
        for n in range(procs):
            env = {**base, "STEPFLOW_HOST": f"host-{n % HOSTS}"}
            err = open(errdir / f"{n}.txt", "wb")  # noqa: SIM115 - closed below, after the wait
            running.append((subprocess.Popen([*cmd, "run", "--output", "quiet", "--name", f"job-{n}", "--", *gen],
                                             env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=err), err))
        codes = [p.wait() for p, _ in running]
        wall = time.perf_counter() - started
        for _, err in running:
            err.close()
        sql = ("SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'completed'), COUNT(DISTINCT host),"
               " (SELECT COALESCE(SUM(line_count), 0) FROM logs), (SELECT COUNT(*) FROM steps) FROM executions")
        if backend == "postgresql":
            row = [int(x) for x in pg_scalar(srv, "fleet", sql).split("|")]
        else:
            sql = sql.replace("COUNT(*) FILTER (WHERE status = 'completed')", "SUM(status = 'completed')")
            row = list(common.query(common.database(storage), sql)[0])
        errors = sum(1 for n in range(procs) if "error" in (errdir / f"{n}.txt").read_text(errors="replace"))
        bad_exits = sum(1 for c in codes if c != 0)
        lost_runs = procs - row[1]
        lost_lines = expected_lines - row[3]
        found[backend].append(f"runs {row[0]} ({row[1]} completed), hosts {row[2]}, lines {row[3]:,}, steps {row[4]},"
                              f" lost runs {lost_runs}, lost lines {lost_lines}, errors {errors + bad_exits}")
        return wall

    walls = common.interleaved({"sqlite": lambda: arm("sqlite"), "postgresql": lambda: arm("postgresql")}, args.runs,
                               warmup=0)
    sq, pg = common.median(walls["sqlite"]), common.median(walls["postgresql"])
    common.table(["store", "wall s (median)", "min-max", "lines/s overall", "x SQLite"], [
        ["SQLite, one file", sq, common.spread(walls["sqlite"]), expected_lines / sq, 1.0],
        ["PostgreSQL, one server", pg, common.spread(walls["postgresql"]), expected_lines / pg, pg / sq],
    ])
    for backend, rounds in found.items():
        for n, text in enumerate(rounds):
            print(f"  {backend} round {n + 1}: {text}")
    print(f"  expected per round: runs {procs}, hosts {min(HOSTS, procs)}, lines {expected_lines:,},"
          f" steps {procs * steps}; goal: 0 lost, 0 errors")
    print()


# -- ls over 1,000,000 runs ------------------------------------------------------------------

NAMES = ["deploy-web", "deploy-api", "backup-db", "nightly-etl", "report", "sync-assets", "reindex", "smoke"]
STATUSES = ["completed"] * 7 + ["failed", "failed", "cancelled", "timed_out"]
TAGS = ['["prod"]', '["staging"]', '["prod", "nightly"]', "[]"]
COLUMNS = ("id", "name", "command", "status", "exit_code", "created_at", "created_ts", "started_at", "completed_at",
           "tags", "total_steps", "completed_steps", "host", "pid", "user_name", "working_directory")


def rows(count: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(7)
    now = time.time()
    for i in range(count):
        created = now - i * (365 * 86400 / count) - rng.random() * 60
        status = STATUSES[rng.randrange(len(STATUSES))]
        h = f"{rng.getrandbits(128):032x}"
        iso = datetime.fromtimestamp(created, UTC).isoformat()
        yield (f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}", NAMES[i % len(NAMES)],
               f"bash jobs/{NAMES[i % len(NAMES)]}.sh --fast", status, 0 if status == "completed" else 1, iso, created,
               iso, datetime.fromtimestamp(created + 5 + rng.random() * 600, UTC).isoformat(), TAGS[i % len(TAGS)],
               5, 5 if status == "completed" else 3, f"host-{i % HOSTS}", 1, "cron", "/srv/jobs")


def build_sqlite(storage: Path, count: int) -> float:
    import apsw

    started = time.perf_counter()
    db = common.make_empty_store(storage)
    conn = apsw.Connection(str(db))
    with conn:
        conn.executemany(f"INSERT INTO executions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                         rows(count))
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


def build_postgres(srv: PgServer, template: str, count: int) -> tuple[str, float]:
    import psycopg

    started = time.perf_counter()
    url = fresh_database(srv, template, "ls")
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY executions ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows(count):
                copy.write_row(row)
        conn.execute("VACUUM (ANALYZE) executions")
    return url, time.perf_counter() - started


def ls(args: Any, cmd: list[str], work: Path, srv: PgServer, template: str) -> None:
    count = 20_000 if args.quick else 1_000_000
    storage = work / "store-ls"
    sq_build = build_sqlite(storage, count)
    url, pg_build = build_postgres(srv, template, count)
    print(f"## ls over {count:,} runs (built in {sq_build:.1f} s for SQLite, {pg_build:.1f} s for PostgreSQL by COPY)")
    sq_env = common.bench_env(storage)
    pg_env = {**sq_env, "STEPFLOW_DATABASE_URL": url}
    commands = {
        "--version": ["--version"],
        "ls": ["ls"],
        "ls --json": ["ls", "--json"],
        "ls --status failed --name 'deploy*' --since 30d": ["ls", "--status", "failed", "--name", "deploy*",
                                                            "--since", "30d"],
        "show last": ["show", "last"],
    }
    arms: dict[str, Any] = {}
    for backend, env in (("sqlite", sq_env), ("postgresql", pg_env)):
        for label, argv in commands.items():
            def run(argv: list[str] = argv, env: dict[str, str] = env) -> float:
                wall, done = common.timed([*cmd, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                if done.returncode != 0:
                    common.warn(f"{shlex.join(argv)}: exit {done.returncode}: {done.stderr[-200:]!r}")
                return wall
            arms[f"{backend}|{label}"] = run
    walls = common.interleaved(arms, args.runs)
    table = []
    for label in commands:
        sq = common.median(walls[f"sqlite|{label}"])
        pg = common.median(walls[f"postgresql|{label}"])
        base_sq = common.median(walls["sqlite|--version"])
        base_pg = common.median(walls["postgresql|--version"])
        table.append([f"stepflow {label}", sq * 1000, (sq - base_sq) * 1000, pg * 1000, (pg - base_pg) * 1000])
    common.table(["command", "SQLite ms", "SQLite over --version", "PostgreSQL ms", "PostgreSQL over --version"],
                 table)
    print("  goal (issue 13): ls on PostgreSQL <= 30 ms over --version")
    breakdown(args, url, storage)
    print()


def breakdown(args: Any, url: str, storage: Path) -> None:
    """Where the PostgreSQL `ls` time goes: importing psycopg (a process apart) and, in-process,
    opening the store and the queries `ls` makes."""
    py = [sys.executable, "-c"]
    imports = common.interleaved({
        "bare": lambda: common.timed([*py, "pass"])[0],
        "psycopg": lambda: common.timed([*py, "import psycopg"])[0],
        "typer": lambda: common.timed([*py, "import typer"])[0],
    }, args.runs)
    from stepflow.config import load_settings
    from stepflow.store import RunQuery, open_store, parse_url

    rows = []
    for backend, target in (("sqlite", str(common.database(storage))), ("postgresql", url)):
        opens, sweeps, lists, filtered = [], [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            store = open_store(load_settings(storage=storage), url=parse_url(target))
            t1 = time.perf_counter()
            store.find_runs(RunQuery(status="running"))
            store.find_runs(RunQuery(status="pending"))
            t2 = time.perf_counter()
            store.find_runs(RunQuery(limit=20))
            t3 = time.perf_counter()
            store.find_runs(RunQuery(status="failed", name_glob="deploy*", since_ts=time.time() - 30 * 86400,
                                     limit=20))
            t4 = time.perf_counter()
            store.close()
            opens.append(t1 - t0)
            sweeps.append(t2 - t1)
            lists.append(t3 - t2)
            filtered.append(t4 - t3)
        rows.append([backend, *(1000 * common.median(x) for x in (opens, sweeps, lists, filtered))])
    bare = common.median(imports["bare"])
    print(f"  import psycopg: {1000 * (common.median(imports['psycopg']) - bare):.0f} ms in a process of its own"
          f" (import typer, most of --version: {1000 * (common.median(imports['typer']) - bare):.0f} ms)")
    common.table(["in-process ms (median)", "open", "abandoned sweep (2 queries)", "ls: newest 20",
                  "failed deploy* since 30d"], rows)


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=5)
    p.add_argument("parts", nargs="*", metavar="PART", help=f"which of {', '.join(PARTS)} (default: all)")
    args = p.parse_args()
    parts = args.parts or list(PARTS)
    if set(parts) - set(PARTS):
        p.error(f"parts are {', '.join(PARTS)}")
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()
    with common.workdir("postgres") as work:
        common.header("PostgreSQL beside SQLite: " + ", ".join(parts), args, cmd, how, where=work)
        with server(work) as srv:
            print(f"server   : {srv.bin_dir} (fsync=off, shared_buffers=64MB), {srv.url('')}")
            print()
            template = template_database(srv)
            for part in parts:
                {"ingest": ingest, "fleet": fleet, "ls": ls}[part](args, cmd, work, srv, template)
    common.footer(started)
    return 0


if __name__ == "__main__":
    os.environ.pop("STEPFLOW_DATABASE_URL", None)
    raise SystemExit(main())

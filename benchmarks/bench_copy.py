"""`stepflow db copy`: a history of 10,000 runs of 100 lines moved SQLite -> PostgreSQL and back.

A real server is started for the run (tests/pgserver.py: a Unix socket, fsync=off as the
test server has it). The source is one SQLite store of N runs (3 steps and 100 lines of 80
bytes in 10 output blocks each, as a run's writer stores them). Arms, round-robin, each into
a fresh empty target:

  sqlite->pg      `stepflow db copy --to postgresql://...`
  pg->sqlite      `stepflow --database NEW.db db copy --from postgresql://...` (the copy made above)
  sqlite->sqlite  `stepflow db copy --to NEW.db`: the same code, both ends SQLite
  backup          `stepflow backup NEW.db`: SQLite's online backup of the same file, verified
                  (the page-level floor a row-by-row copy is measured against)

Every copy is checked: runs, steps, blocks and lines at the target equal the source's.

    python benchmarks/bench_copy.py [--runs N] [--quick] [--module] [--executions N]
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import common

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pgserver import PgServer, running_server  # noqa: E402

LINES, BLOCKS, STEPS = 100, 10, 3


@contextlib.contextmanager
def server(work: Path) -> Iterator[PgServer]:
    with running_server(work / "pg") as srv:
        yield srv


def build_source(storage: Path, executions: int) -> dict[str, int]:
    """A store of `executions` finished runs, written through the store 500 runs a transaction."""
    from stepflow.config import load_settings
    from stepflow.store import LogBlock, NewRun, NewStep, open_store

    line = b"L" * (common.LINE_BYTES - 1)
    per_block = LINES // BLOCKS
    data = b"\n".join([line] * per_block)
    store = open_store(load_settings(storage=storage))
    try:
        writes: list[Any] = []
        for i in range(executions):
            run_id = f"{i:08d}-{os.urandom(4).hex()}"
            ts = 1767225600.0 + i * 60
            writes.append(NewRun.of({"id": run_id, "name": f"job-{i % 40}", "command": "/srv/jobs/job.sh",
                                     "status": "completed" if i % 9 else "failed", "exit_code": 0 if i % 9 else 1,
                                     "created_at": f"2026-01-01T00:00:00.{i % 1000:03d}+00:00", "created_ts": ts,
                                     "host": f"host-{i % 40}", "tags": ["nightly"], "metadata": {"i": i},
                                     "total_steps": STEPS, "completed_steps": STEPS, "line_count": LINES}))
            for s in range(STEPS):
                writes.append(NewStep.of({"id": f"{run_id}-{s}", "execution_id": run_id, "name": f"step-{s}",
                                          "step_index": s, "status": "completed", "created_at": "2026-01-01T00:00:00"}))
            for b in range(BLOCKS):
                writes.append(LogBlock(run_id, b * STEPS // BLOCKS, 1, b * per_block, per_block, ts + b, data))
            if len(writes) >= 500 * (1 + STEPS + BLOCKS):
                store.write(writes)
                writes = []
        if writes:
            store.write(writes)
    finally:
        store.close()
    return {"runs": executions, "steps": executions * STEPS, "blocks": executions * BLOCKS,
            "lines": executions * LINES}


def sqlite_counts(db: Path) -> dict[str, int]:
    row = common.query(db, "SELECT (SELECT COUNT(*) FROM executions), (SELECT COUNT(*) FROM steps),"
                           " (SELECT COUNT(*) FROM logs), (SELECT COALESCE(SUM(line_count), 0) FROM logs)")[0]
    return dict(zip(("runs", "steps", "blocks", "lines"), (int(v) for v in row), strict=True))


def pg_counts(srv: PgServer, database: str) -> dict[str, int]:
    out = srv.psql("SELECT (SELECT COUNT(*) FROM executions) || ' ' || (SELECT COUNT(*) FROM steps) || ' ' ||"
                   " (SELECT COUNT(*) FROM logs) || ' ' || (SELECT COALESCE(SUM(line_count), 0) FROM logs)",
                   database=database).split()
    return dict(zip(("runs", "steps", "blocks", "lines"), (int(v) for v in out), strict=True))


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=3)
    p.add_argument("--executions", type=int, default=None, help="runs in the source store (default 10,000)")
    args = p.parse_args()
    executions = args.executions or (1_000 if args.quick else 10_000)
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()
    with common.workdir("copy") as work:
        common.header(f"db copy: {executions:,} runs of {LINES} lines", args, cmd, how, where=work)
        with server(work) as srv:
            print(f"server   : {srv.bin_dir} (fsync=off), {srv.url('')}")
            source = work / "source"
            t0 = time.perf_counter()
            want = build_source(source, executions)
            src_db = common.database(source)
            print(f"source   : {src_db}, {src_db.stat().st_size / 2**20:.0f} MiB, built in"
                  f" {time.perf_counter() - t0:.1f} s: {want}")
            print()
            env = common.bench_env(source)
            problems: list[str] = []
            pg_template = "copy_template"
            srv.create_database(pg_template)
            seeded = srv.create_database("copy_seed")  # the PostgreSQL source of pg->sqlite

            rss: dict[str, list[int]] = {}

            def run(arm: str, argv: list[str]) -> tuple[float, int]:
                """One timed stepflow command: wall seconds and exit status (its peak RSS kept)."""
                with open(work / f"{arm.replace('>', '')}.err", "wb") as err:
                    r = common.reaped([*cmd, *argv], env=env, stdout=subprocess.DEVNULL, stderr=err)
                rss.setdefault(arm, []).append(r.maxrss_kib)
                return r.wall, r.returncode

            def check(arm: str, got: dict[str, int], status: int) -> None:
                if status != 0 or got != want:
                    err = (work / f"{arm.replace('>', '')}.err").read_text(errors="replace")
                    problems.append(f"{arm}: exit {status}, {got} (want {want}); {err[-300:]!r}")

            def fresh_pg(name: str) -> str:
                srv.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                srv.psql(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
                return srv.url(name)

            def to_pg() -> float:
                url = fresh_pg("copy_target")
                wall, status = run("sqlite->pg", ["db", "copy", "--to", url])
                check("sqlite->pg", pg_counts(srv, "copy_target"), status)
                return wall

            def new_file(name: str) -> Path:
                target = work / name
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{target}{suffix}").unlink(missing_ok=True)
                return target

            def from_pg() -> float:
                target = new_file("from-pg.db")
                wall, status = run("pg->sqlite", ["--database", str(target), "db", "copy", "--from", seeded])
                check("pg->sqlite", sqlite_counts(target), status)
                return wall

            def to_sqlite() -> float:
                target = new_file("copy.db")
                wall, status = run("sqlite->sqlite", ["db", "copy", "--to", str(target)])
                check("sqlite->sqlite", sqlite_counts(target), status)
                return wall

            def backup() -> float:
                target = new_file("backup.db")
                wall, status = run("backup", ["backup", str(target)])
                check("backup", sqlite_counts(target), status)
                return wall

            seed = common.timed([*cmd, "db", "copy", "--to", seeded], env=env, capture_output=True)[1]
            check("seed", pg_counts(srv, "copy_seed"), seed.returncode)
            print(f"seeded   : {seed.stdout.decode().strip()}")
            again = common.timed([*cmd, "db", "copy", "--to", seeded], env=env, capture_output=True)
            print(f"again    : {again[0]:.2f} s, {again[1].stdout.decode().strip()}")
            print()
            arms = {"sqlite->pg": to_pg, "pg->sqlite": from_pg, "sqlite->sqlite": to_sqlite, "backup": backup}
            walls = common.interleaved(arms, args.runs)
            base = common.median(walls["backup"])
            common.table(["arm", "wall s (median)", "min-max", "runs/s", "lines/s", "x backup", "peak RSS MiB"], [
                [name, common.median(w), common.spread(w), executions / common.median(w),
                 want["lines"] / common.median(w), common.median(w) / base, max(rss[name]) / 1024]
                for name, w in walls.items()])
            for problem in problems:
                common.warn(problem)
            if not problems:
                print(f"checked: every copy exited 0 with exactly {want['runs']:,} runs, {want['steps']:,} steps,"
                      f" {want['blocks']:,} blocks and {want['lines']:,} lines at the target")
    common.footer(started)
    return 0


if __name__ == "__main__":
    os.environ.pop("STEPFLOW_DATABASE_URL", None)
    raise SystemExit(main())

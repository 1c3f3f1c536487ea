"""`stepflow stats` on a store of 100,000 runs (500,000 steps): the library call, in ms.

The store is made by stepflow's own schema (open_store), then filled with direct executemany
inserts into `executions` and `steps` (a few seconds for 100,000 runs), 8 job names spread over
a year, 5 steps each. Arms, each timed in this process after one warm-up, round-robin:
  stats, all jobs, recent=50       what `stepflow stats` computes by default
  stats, one job, recent=50        `stepflow stats NAME`
  stats, all jobs, recent=all      every one of the 100,000 runs and their steps
  metrics (prom textfile figures)  what --prom-textfile reads after each run
  streak statuses, one job         what --on-streak/--on-recover read after each run
  stepflow stats (CLI)             the whole command in a fresh process, when it is wired
Issue 15 asks for the figure; there is no target.

    python benchmarks/bench_stats.py [--runs 5] [--quick] [--module]
"""

from __future__ import annotations

import random
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import common

NAMES = ["deploy-web", "deploy-api", "backup-db", "nightly-etl", "report", "sync-assets", "reindex", "smoke"]
STATUSES = ["completed"] * 8 + ["failed", "timed_out", "cancelled", "skipped"]
STEPS = ["checkout", "build", "test", "package", "upload"]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def build(storage: Path, runs: int) -> float:
    """A store of `runs` runs with 5 steps each, by direct inserts; returns seconds taken."""
    import apsw

    started = time.perf_counter()
    db = common.make_empty_store(storage)
    conn = apsw.Connection(str(db))
    conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF")
    rng = random.Random(15)
    now = time.time()
    executions, steps = [], []
    for i in range(runs):
        created = now - i * (365 * 86400 / runs) - rng.random() * 60
        status = STATUSES[rng.randrange(len(STATUSES))]
        name = NAMES[i % len(NAMES)]
        run_id = uuid(rng)
        t = created
        for index, step in enumerate(STEPS):
            seconds = (index + 1) * (1 + rng.random())
            steps.append((uuid(rng), run_id, step, index, "completed", iso(t), iso(t), iso(t + seconds)))
            t += seconds
        executions.append((run_id, name, f"bash jobs/{name}.sh", status, 0 if status == "completed" else 1,
                           iso(created), created, iso(created), iso(t), 5, 5, "bench", "cron"))
    with conn:
        conn.executemany(
            "INSERT INTO executions (id, name, command, status, exit_code, created_at, created_ts, started_at,"
            " completed_at, total_steps, completed_steps, host, user_name) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            executions)
        conn.executemany(
            "INSERT INTO steps (id, execution_id, name, step_index, status, created_at, started_at, completed_at)"
            " VALUES (?,?,?,?,?,?,?,?)", steps)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=5)
    args = p.parse_args()
    runs_in_store = 5_000 if args.quick else 100_000
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()
    from stepflow.config import load_settings
    from stepflow.cron import query
    from stepflow.store import open_store

    with common.workdir("stats") as work:
        storage = work / "store"
        env = common.bench_env(storage)
        common.header(f"stepflow stats on a store of {runs_in_store:,} runs", args, cmd, how, where=work)
        took = build(storage, runs_in_store)
        size = common.database(storage).stat().st_size
        print(f"store    : {runs_in_store:,} runs, {runs_in_store * len(STEPS):,} steps inserted in {took:.1f} s;"
              f" database {size / 1e6:.1f} MB")
        store = open_store(load_settings(storage=storage))
        wired = subprocess.run([*cmd, "stats", "--help"], env=env, capture_output=True).returncode == 0

        def timed(fn) -> float:  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        def cli() -> float:
            wall, done = common.timed([*cmd, "stats"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if done.returncode != 0:
                common.warn(f"stepflow stats exited {done.returncode}: {done.stderr[-300:]!r}")
            return wall

        arms = {
            "stats, all jobs, recent=50": lambda: timed(lambda: query.stats(store)),
            "stats, one job, recent=50": lambda: timed(lambda: query.stats(store, "backup-db")),
            f"stats, all jobs, recent=all ({runs_in_store:,})":
                lambda: timed(lambda: query.stats(store, recent=runs_in_store)),
            "metrics for the prom textfile": lambda: timed(lambda: query.metrics(store)),
            "streak statuses, one job (40)": lambda: timed(lambda: query.recent_statuses(store, "backup-db", limit=40)),
        }
        if wired:
            arms["stepflow stats (CLI, fresh process)"] = cli
            arms["stepflow --version (CLI floor)"] = lambda: common.timed([*cmd, "--version"], env=env,
                                                                        stdout=subprocess.PIPE)[0]
        results = common.interleaved(arms, args.runs)
        store.close()
        rows = [[name, common.median(v) * 1000, common.spread([x * 1000 for x in v])] for name, v in results.items()]
        common.table(["arm", "median ms", "min-max ms"], rows)
        if not wired:
            print("\n`stepflow stats` is not a command in this build: the CLI arm was left out")
    common.footer(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

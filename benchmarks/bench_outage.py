"""PostgreSQL away: runs recorded during an outage go to the spool, then are replayed (issue 13).

A real server (tests/pgserver.py, a Unix socket, fsync=off). Each run is one
`stepflow run --output quiet` of 20,000 lines of 80 bytes in 5 steps. Arms, in this order:

  up       --runs runs with the server up: the baseline wall time of a run
  stopped  the server stopped (a fast shutdown, as a crash or restart): --runs runs, each
           spooled whole; its wall time against the baseline
  frozen   the server SIGSTOPped (sockets open, nothing answered): a few runs (--frozen), each
           spooled after the writer's connect_timeout
  replay   the server started again, then `stepflow db replay`: its wall time; then every run,
           line and step of every arm is counted in PostgreSQL (0 lost, 0 twice is the goal)
           and the spool folders must be empty

    python benchmarks/bench_outage.py [--runs N] [--frozen N] [--quick] [--module]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pgserver import running_server  # noqa: E402

LINES, STEPS = 20_000, 5


def spool_files(folders: list[Path]) -> list[Path]:
    return [p for f in folders if f.is_dir() for p in f.iterdir()]


def spooled_lines(folders: list[Path]) -> int:
    from stepflow.store.base import LogBlock
    from stepflow.store.spool import read_batches

    return sum(w.line_count for p in spool_files(folders) for _seq, ws in read_batches(p) for w in ws
               if isinstance(w, LogBlock))


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=20)
    p.add_argument("--frozen", type=int, default=3, help="runs while the server is frozen (default 3)")
    args = p.parse_args()
    lines = 2_000 if args.quick else LINES
    runs = min(args.runs, 5) if args.quick else args.runs
    frozen_runs = min(args.frozen, 1) if args.quick else args.frozen
    every = lines // STEPS
    per_run = lines - common.markers_in(lines, every)
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()
    with common.workdir("outage") as work:
        common.header("PostgreSQL outage: spool, then replay", args, cmd, how, where=work)
        gen = common.gen_argv(common.write_generator(work), lines, every)
        storage = work / "store"
        with running_server(work / "pg") as srv:
            url = srv.create_database("outage")
            env = {**common.bench_env(storage), "STEPFLOW_DATABASE_URL": url}
            from stepflow.config import load_settings

            folders = load_settings(env).spool_folders
            print(f"server   : {srv.bin_dir} (fsync=off), {url}")
            print(f"each run : {per_run:,} lines persisted in {STEPS} steps ({lines:,} lines of 80 bytes printed)")
            print()
            walls: dict[str, list[float]] = {"up": [], "stopped": [], "frozen": []}
            problems: list[str] = []

            def one(arm: str, n: int) -> None:
                err = work / f"{arm}-{n}.txt"
                with open(err, "wb") as f:
                    r = common.reaped([*cmd, "run", "--output", "quiet", "--name", f"{arm}-{n}", "--", *gen],
                                      env=env, stdout=subprocess.DEVNULL, stderr=f)
                if r.returncode != 0:
                    problems.append(f"{arm}-{n}: exit {r.returncode}: {err.read_text(errors='replace')[-300:]!r}")
                walls[arm].append(r.wall)

            one("up", -1)  # untimed: the schema is made, the page cache warm
            walls["up"].clear()
            for n in range(runs):
                one("up", n)
            assert srv.process is not None
            srv.process.send_signal(signal.SIGINT)  # fast shutdown: sessions cut, as a crash or restart
            srv.process.wait(60)
            srv.process = None
            for n in range(runs):
                one("stopped", n)
            srv.start()
            frozen_pids = srv.pids()
            for pid in frozen_pids:
                os.kill(pid, signal.SIGSTOP)
            try:
                for n in range(frozen_runs):
                    one("frozen", n)
            finally:
                for pid in frozen_pids:
                    os.kill(pid, signal.SIGCONT)
            outage_runs = runs + frozen_runs
            in_spool = spooled_lines(folders)
            spooled_runs = len(spool_files(folders))

            replay_wall, replayed = common.timed([*cmd, "db", "replay", "--wait", "30"], env=env, capture_output=True)
            if replayed.returncode != 0:
                problems.append(f"db replay: exit {replayed.returncode}: {replayed.stdout!r} {replayed.stderr!r}")

            def pg(sql: str) -> list[str]:
                return srv.psql(sql, database="outage").strip().split("|")

            total_runs, completed = (int(x) for x in pg(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'completed') FROM executions"
                " WHERE name <> 'up--1'"))
            stored_lines, blocks, distinct_blocks = (int(x) for x in pg(
                "SELECT COALESCE(SUM(l.line_count), 0), COUNT(*), COUNT(DISTINCT (l.execution_id, l.first_line))"
                " FROM logs l JOIN executions e ON e.id = l.execution_id WHERE e.name <> 'up--1'"))
            steps = int(pg("SELECT COUNT(*) FROM steps s JOIN executions e ON e.id = s.execution_id"
                           " WHERE e.name <> 'up--1'")[0])
            expected_runs = runs + outage_runs
            lost = expected_runs * per_run - stored_lines
            left = spool_files(folders)

            up = common.median(walls["up"])
            rows: list[list[Any]] = [
                ["server up (baseline)", len(walls["up"]), up, common.spread(walls["up"]), 1.0],
                ["server stopped", len(walls["stopped"]), common.median(walls["stopped"]),
                 common.spread(walls["stopped"]), common.median(walls["stopped"]) / up],
            ]
            if walls["frozen"]:
                rows.append(["server frozen (SIGSTOP)", len(walls["frozen"]), common.median(walls["frozen"]),
                             common.spread(walls["frozen"]), common.median(walls["frozen"]) / up])
            common.table(["a run's wall time", "runs", "s (median)", "min-max", "x up"], rows)
            print()
            common.table(["outage", "value"], [
                ["runs during the outage", outage_runs],
                ["runs with a spool file after it", spooled_runs],
                ["lines in the spool", in_spool],
                ["db replay wall s", replay_wall],
                ["db replay says", replayed.stdout.decode(errors="replace").strip().splitlines()[0]
                 if replayed.stdout else "-"],
                ["runs in PostgreSQL (of expected)", f"{total_runs} of {expected_runs} ({completed} completed)"],
                ["lines in PostgreSQL (of expected)", f"{stored_lines:,} of {expected_runs * per_run:,}"],
                ["lines lost", lost],
                ["output blocks stored twice", blocks - distinct_blocks],
                ["steps (of expected)", f"{steps} of {expected_runs * STEPS}"],
                ["spool files left", len(left)],
            ])
            if lost or total_runs != expected_runs or completed != expected_runs or steps != expected_runs * STEPS:
                problems.append("runs, lines or steps are missing after the replay")
            if left:
                problems.append(f"spool files left: {left}")
            if spooled_runs != outage_runs:
                problems.append(f"{spooled_runs} spool files for {outage_runs} runs during the outage")
            for text in problems:
                common.warn(text)
            if not problems:
                print("checked: every run exited 0; after the replay PostgreSQL holds every run, line and step once,"
                      " and the spool folders are empty")
    common.footer(started)
    return 0


if __name__ == "__main__":
    os.environ.pop("STEPFLOW_DATABASE_URL", None)
    raise SystemExit(main())

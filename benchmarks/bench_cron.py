"""What each cron option adds to `stepflow run -- true`: through the real CLI against no option
(the figure users see), then on its parts in-process.

Through the CLI (`--cli-only` stops after it), round-robin after one warm-up, medians of --runs,
each arm a fresh `stepflow run ... -- true` into one small store (a few hundred runs):
  (no option)                      the floor of this benchmark run
  --lock job / --on-overlap skip   the flock and its holder record
  --retry 2                        nothing to retry (true succeeds): the policy's cost
  --on-finish true                 one hook, /bin/sh, the run JSON on stdin
  --on-streak 3:true               the job's recent statuses read (the hook does not fire)
  --ping URL                       start + finish POSTs to a server on 127.0.0.1
  --prom-textfile DIR              metrics of every job in that store, written atomically
  STEPFLOW_ON_OVERLAP=skip         the same lock, set from the environment (a crontab)

In-process arms:
  import stepflow.cron.finish      a fresh `python -c` importing it beside stepflow.run.execute (the floor)
  --lock (acquire + release)       flock on <storage>/locks/job.lock, holder record written
  --on-failure 'true'              one hook: /bin/sh, the run JSON on stdin, STEPFLOW_* set
  --ping (start + finish)          two POSTs to an HTTP server on 127.0.0.1 (the one here)
  --prom-textfile                  metrics of every job from a store of --store-runs runs, written atomically
  --on-streak (statuses query)     the job's recent statuses from that store
  CronRun.finish (all of them)     lock, ping, textfile, streak and three hooks after one run

    python benchmarks/bench_cron.py [--runs 15] [--quick] [--store-runs 100000] [--cli-only]
"""

from __future__ import annotations

import http.server
import os
import sys
import threading
import time

import bench_stats
import common


class Quiet(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=15)
    p.add_argument("--store-runs", type=int, default=100_000, help="runs in the store the textfile and streak read")
    p.add_argument("--cli-only", action="store_true", help="only the arms through the CLI")
    args = p.parse_args()
    store_runs = 5_000 if args.quick else args.store_runs
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()
    from stepflow import history
    from stepflow.config import load_settings
    from stepflow.cron import query
    from stepflow.cron.finish import CronRun
    from stepflow.cron.hooks import run_hook
    from stepflow.cron.lock import acquire
    from stepflow.cron.ping import Pinger
    from stepflow.cron.prom import update_textfile
    from stepflow.cron.settings import cron_options
    from stepflow.store import open_store

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/5f0c1d2e-aaaa-4bbb-8ccc-123456789abc"
    with common.workdir("cron-cli") as work:
        common.header("the cron options through `stepflow run -- true`", args, cmd, how, where=work)
        cli_arms(cmd, work, url, args.runs)
    if args.cli_only:
        httpd.shutdown()
        common.footer(started)
        return 0
    with common.workdir("cron") as work:
        storage = work / "store"
        print()
        common.header("the cron options' parts, in-process", args, cmd, how, where=work)
        took = bench_stats.build(storage, store_runs)
        print(f"store    : {store_runs:,} runs of 8 jobs built in {took:.1f} s\n")
        store = open_store(load_settings(storage=storage))
        row = store.find_runs(query.RunQuery(limit=1))[0]
        run = history.run_detail(row, store.steps(row.id), [])
        prom_dir = work / "prom"
        prom_dir.mkdir()
        env = {"PATH": os.environ["PATH"]}
        base_imports = "import stepflow.run.execute"  # what `stepflow run` imports anyway
        imports = base_imports + ", stepflow.cron.finish, stepflow.cron.settings"

        def timed(fn) -> float:  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        def lock() -> None:
            acquire(storage / "locks", "job").release()

        def ping() -> None:
            pinger = Pinger(url, run_id=run["id"])
            pinger.start()
            assert pinger.finish(0, body=b"tail\n") == []

        def everything() -> None:
            options = cron_options({}, lock="job", ping_url=url, prom_textfile=str(prom_dir), on_failure="true",
                                   on_success="true", on_finish="true", on_streak="3 true", on_recover="true")
            cron = CronRun(options, run_id=run["id"], run_name=run["name"], lock_dir=storage / "locks")
            cron.start()
            cron.command_started(os.getpid())
            warnings = cron.finish(run, store=store, env=env)
            assert warnings == [], warnings

        arms = {
            "import stepflow.run.execute (floor)": lambda: common.timed([sys.executable, "-c", base_imports])[0],
            "... and stepflow.cron.finish": lambda: common.timed([sys.executable, "-c", imports])[0],
            "--lock (acquire + release)": lambda: timed(lock),
            "--on-failure 'true' (one hook)": lambda: timed(lambda: run_hook("true", run, env=env, timeout=30)),
            "--ping (start + finish, loopback)": lambda: timed(ping),
            f"--prom-textfile ({store_runs:,} runs, 8 jobs)":
                lambda: timed(lambda: update_textfile(prom_dir, lambda: query.metrics(store))),
            "--on-streak (statuses of 40 runs)":
                lambda: timed(lambda: query.recent_statuses(store, run["name"], limit=40)),
            "CronRun start+finish (all, 3 hooks)": lambda: timed(everything),
        }
        results = common.interleaved(arms, args.runs)
        store.close()
        rows = [[name, common.median(v) * 1000, common.spread([x * 1000 for x in v])] for name, v in results.items()]
        common.table(["arm", "median ms", "min-max ms"], rows)
        extra = (common.median(results["... and stepflow.cron.finish"])
                 - common.median(results["import stepflow.run.execute (floor)"]))
        print(f"\nimporting the cron parts: {extra * 1000:.1f} ms over what `stepflow run` imports anyway"
              " (import them only when an option asks)")
    httpd.shutdown()
    common.footer(started)
    return 0


def cli_arms(cmd: list[str], work: object, url: str, runs: int) -> None:
    """Each option on `run -- true` through the CLI, against no option, in one round-robin."""
    from pathlib import Path

    work = Path(str(work))
    storage = work / "store"
    prom = work / "prom"
    prom.mkdir()
    env = common.bench_env(storage)
    for name in [n for n in env if n.startswith("STEPFLOW_") and n != "STEPFLOW_STORAGE_PATH"]:
        del env[name]
    options: dict[str, tuple[list[str], dict[str, str]]] = {
        "(no option)": ([], {}),
        "--lock job": (["--lock", "job"], {}),
        "--on-overlap skip": (["--on-overlap", "skip"], {}),
        "--retry 2": (["--retry", "2"], {}),
        "--on-finish true": (["--on-finish", "true"], {}),
        "--on-streak 3:true": (["--on-streak", "3:true"], {}),
        "--ping URL (loopback)": (["--ping", url], {}),
        "--prom-textfile DIR": (["--prom-textfile", str(prom)], {}),
        "STEPFLOW_ON_OVERLAP=skip": ([], {"STEPFLOW_ON_OVERLAP": "skip"}),
    }

    def arm(flags: list[str], extra: dict[str, str]):  # type: ignore[no-untyped-def]
        def once() -> float:
            took, done = common.timed([*cmd, "run", "-o", "quiet", "-n", "job", *flags, "--", "true"],
                                      env={**env, **extra}, capture_output=True)
            if done.returncode != 0 or done.stderr:
                raise SystemExit(f"stepflow run {' '.join(flags)} -- true: exit {done.returncode} {done.stderr!r}")
            return took

        return once

    results = common.interleaved({name: arm(*spec) for name, spec in options.items()}, runs)
    floor = common.median(results["(no option)"])
    rows = [[name, common.median(v) * 1000, (common.median(v) - floor) * 1000, common.spread([x * 1000 for x in v])]
            for name, v in results.items()]
    common.table(["option on run -- true", "median ms", "over none ms", "min-max ms"], rows)


if __name__ == "__main__":
    raise SystemExit(main())

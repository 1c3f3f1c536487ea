"""`stepflow ls` on a store of 100,000 runs: its median wall time minus that of `stepflow --version`.

The store is filled through stepflow's own store API (`Store.write`, batches of 10,000
runs in one transaction each), with names, statuses, tags and times spread like a busy cron
host's year. Arms, round-robin after one warm-up round, each a fresh process run to its end:
  stepflow --version                 typer and the CLI package: the floor every command pays
  stepflow ls                        stdout a pipe: plain aligned text, Rich never imported
  stepflow ls --json                 what scripts call
  stepflow ls --status failed --name 'deploy*' --since 30d
  stepflow ls (terminal)             stdout a pseudo-terminal: the Rich table with colours
  stepflow show last [--json]        one run's report, through the same read path
Issue 3's target is for `ls` over `--version`: <= 30 ms.

    python benchmarks/bench_ls.py [--runs 11] [--quick] [--module]
"""

from __future__ import annotations

import os
import pty
import random
import select
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import common

TARGET = "<= 30 ms over --version"  # issue 3
NAMES = ["deploy-web", "deploy-api", "backup-db", "nightly-etl", "report", "sync-assets", "reindex", "smoke"]
STATUSES = ["completed"] * 7 + ["failed", "failed", "cancelled", "timed_out"]
TAGS = [["prod"], ["staging"], ["prod", "nightly"], []]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def build(storage: Path, runs: int) -> float:
    """Fill a new store with `runs` runs through the store API; returns seconds taken."""
    from stepflow.config import load_settings
    from stepflow.store import open_store
    from stepflow.store.base import NewRun

    started = time.perf_counter()
    store = open_store(load_settings(storage=storage))
    rng = random.Random(7)
    now = time.time()
    batch = []
    for i in range(runs):
        created = now - i * (365 * 86400 / runs) - rng.random() * 60
        status = STATUSES[rng.randrange(len(STATUSES))]
        h = f"{rng.getrandbits(128):032x}"
        batch.append(NewRun.of({
            "id": f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}", "name": NAMES[i % len(NAMES)],
            "command": f"bash jobs/{NAMES[i % len(NAMES)]}.sh --fast", "status": status,
            "exit_code": 0 if status == "completed" else 1, "created_at": iso(created), "created_ts": created,
            "started_at": iso(created), "completed_at": iso(created + 5 + rng.random() * 600),
            "tags": TAGS[i % len(TAGS)], "total_steps": 5, "completed_steps": 5 if status == "completed" else 3,
            "host": "bench", "pid": 1, "user_name": "cron", "working_directory": "/srv/jobs",
        }))
        if len(batch) == 10_000:
            store.write(batch)
            batch = []
    if batch:
        store.write(batch)
    store.close()
    return time.perf_counter() - started


def in_terminal(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of `argv` with a pseudo-terminal as stdin/stdout/stderr, its output drained."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                try:
                    if not os.read(fd, 65536):
                        break
                except OSError:
                    break
        os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=11)
    args = p.parse_args()
    runs_in_store = 5_000 if args.quick else 100_000
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()
    with common.workdir("ls") as work:
        storage = work / "store"
        env = common.bench_env(storage)
        env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
        # As installed, Python keeps compiled modules in __pycache__; without them every
        # command recompiles stepflow's sources (~1 ms per module) and ls would look slow.
        if env.pop("PYTHONDONTWRITEBYTECODE", None):
            print("note     : PYTHONDONTWRITEBYTECODE was set; unset for the measured commands")
        common.header(f"stepflow ls on a store of {runs_in_store:,} runs", args, cmd, how, where=work)
        took = build(storage, runs_in_store)
        size = common.database(storage).stat().st_size
        print(f"store    : {runs_in_store:,} runs written through Store.write in {took:.1f} s;"
              f" database {size / 1e6:.1f} MB")
        print()

        def run(*extra: str) -> float:
            wall, done = common.timed([*cmd, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if done.returncode != 0:
                common.warn(f"{' '.join(extra)} exited {done.returncode}: {done.stderr[-300:]!r}")
            return wall

        arms = {
            "stepflow --version": lambda: run("--version"),
            "stepflow ls": lambda: run("ls"),
            "stepflow ls --json": lambda: run("ls", "--json"),
            "stepflow ls --status failed --name 'deploy*' --since 30d":
                lambda: run("ls", "--status", "failed", "--name", "deploy*", "--since", "30d"),
            "stepflow ls (in a terminal: Rich)": lambda: in_terminal([*cmd, "ls"], env),
            "stepflow show last": lambda: run("show", "last"),
            "stepflow show last --json": lambda: run("show", "last", "--json"),
        }
        results = common.interleaved(arms, args.runs)
        base = common.median(results["stepflow --version"])
        rows = []
        for name, values in results.items():
            med = common.median(values)
            rows.append([name, med * 1000, common.spread([v * 1000 for v in values]),
                         "-" if name.endswith("--version") else (med - base) * 1000])
        common.table(["command", "median ms", "min-max ms", "over --version ms"], rows)
        print()
        over = (common.median(results["stepflow ls"]) - base) * 1000
        print(f"target   : `stepflow ls` {TARGET}: measured {over:.1f} ms")
        common.footer(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

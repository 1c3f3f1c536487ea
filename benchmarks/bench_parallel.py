"""Parallel: N `stepflow run --output quiet` at once on one store, each printing 2,000 lines in 5 steps.

Each round starts all N processes together on a fresh copy of an empty store and waits for the
last; the baseline round starts the same N commands as bare pipes (`GEN | cat > /dev/null`).
After each stepflow round the store is checked: lines and steps against what was printed,
runs completed, PRAGMA integrity_check, non-zero exits and "database is locked" on stderr.

    python benchmarks/bench_parallel.py [--runs 5] [--quick] [--procs 100]
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import common

TARGET = "issue 17: <= 3x the bare pipes (beat chronic), 0 lost, 0 'locked'"


def start_all(argvs: list[list[str]], env: dict[str, str], errdir: Path | None) -> tuple[float, list[int]]:
    """Start every command at once and wait for the last; returns (wall seconds, exit statuses)."""
    procs = []
    files = []
    start = time.perf_counter()
    for n, argv in enumerate(argvs):
        err = open(errdir / f"{n}.txt", "wb") if errdir else subprocess.DEVNULL
        if errdir:
            files.append(err)
        procs.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=err))
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - start
    for f in files:
        f.close()  # type: ignore[union-attr]
    return wall, codes


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--procs", type=int, help="concurrent runs (default 100; --quick 10)")
    p.add_argument("--lines", type=int, default=2_000, help="lines each run prints (default 2,000)")
    p.add_argument("--steps", type=int, default=5, help="steps each run has (default 5)")
    args = p.parse_args()
    procs = args.procs or (10 if args.quick else 100)
    every = max(1, args.lines // args.steps)
    markers = common.markers_in(args.lines, every)
    per_run = args.lines - markers
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()

    with common.workdir("parallel") as work:
        gen = common.gen_argv(common.write_generator(work), args.lines, every)
        template, storage = work / "template", work / "store"
        common.make_empty_store(template)
        env = common.bench_env(storage)
        errdir = work / "stderr"
        common.header(f"parallel: {procs} concurrent runs of {args.lines:,} lines in {markers} steps, one store",
                      args, cmd, how, where=work)
        print(f"command  : {shlex.join(gen)}")
        print()
        checks: list[dict[str, Any]] = []

        def bare() -> float:
            wall, _ = start_all([["bash", "-c", f"{shlex.join(gen)} | cat > /dev/null"]] * procs, env, None)
            return wall

        def stepflow_round() -> float:
            common.fresh_store(template, storage)
            errdir.mkdir(exist_ok=True)
            wall, codes = start_all([[*cmd, "run", "--output", "quiet", "--", *gen]] * procs, env, errdir)
            stderr = [f.read_text(errors="replace") for f in sorted(errdir.iterdir())]
            db = common.database(storage)
            (lines,) = common.query(db, "SELECT COALESCE(SUM(line_count), 0) FROM logs")[0]
            (steps,) = common.query(db, "SELECT COUNT(*) FROM steps")[0]
            (runs, completed) = common.query(db, "SELECT COUNT(*), COALESCE(SUM(status = 'completed'), 0)"
                                                 " FROM executions")[0]
            integrity = "; ".join(str(r[0]) for r in common.query(db, "PRAGMA integrity_check"))
            checks.append({
                "wall": wall, "nonzero": sum(c != 0 for c in codes),
                "locked": sum(s.lower().count("database is locked") for s in stderr),
                "noisy": sum(bool(s.strip()) for s in stderr), "lines": lines, "steps": steps,
                "runs": runs, "completed": completed, "integrity": integrity,
                "sample": next((s[-300:] for s in stderr if s.strip()), ""),
            })
            for f in errdir.iterdir():
                f.unlink()
            return wall

        arms = {"bare": bare, "stepflow": stepflow_round}
        chronic = shutil.which("chronic")  # moreutils: runs a command quietly, shows its output if it fails
        if chronic:
            def chronic_round() -> float:
                wall, _ = start_all([[chronic, *gen]] * procs, env, None)
                return wall

            arms["chronic"] = chronic_round
        walls = common.interleaved(arms, args.runs)
        checks = checks[-args.runs:]  # not the warm-up round

    total_lines = procs * per_run
    base, med = common.median(walls["bare"]), common.median(walls["stepflow"])
    common.table(["arm", "wall s (median)", "min-max", "x bare", "lines/s overall"], [
        [f"{procs} x GEN | cat > /dev/null", base, common.spread(walls["bare"]), 1.0, total_lines / base],
        [f"{procs} x stepflow run --output quiet", med, common.spread(walls["stepflow"]), med / base,
         common.median([c["lines"] / c["wall"] for c in checks])],
        *([[f"{procs} x chronic GEN", common.median(walls["chronic"]), common.spread(walls["chronic"]),
            common.median(walls["chronic"]) / base, total_lines / common.median(walls["chronic"])]]
          if "chronic" in walls else []),
    ])
    if "chronic" not in walls:
        print("  (no chronic on PATH: Debian's moreutils has it)")
    print("  stepflow lines/s overall = lines counted in the store / the round's wall time.")
    print()
    rows = []
    for n, c in enumerate(checks, 1):
        rows.append([n, c["wall"], c["nonzero"], c["locked"], c["noisy"], f"{c['lines']:,}/{total_lines:,}",
                     f"{c['steps']:,}/{procs * markers:,}", f"{c['completed']}/{procs}", c["integrity"]])
    common.table(["round", "wall s", "exit != 0", "'locked' in stderr", "stderr not empty", "lines stored",
                  "steps stored", "runs completed", "integrity_check"], rows)
    print(f"\ntarget   : {TARGET}")
    bad = [c for c in checks if c["nonzero"] or c["locked"] or c["lines"] != total_lines
           or c["steps"] != procs * markers or c["completed"] != procs or c["integrity"] != "ok"]
    if bad:
        common.warn(f"{len(bad)} of {len(checks)} rounds lost or failed something; first stderr seen:"
                    f" {bad[0]['sample']!r}")
    else:
        print("checked  : every round: all exits 0, no lock errors, every line and step stored, integrity ok")
    common.footer(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

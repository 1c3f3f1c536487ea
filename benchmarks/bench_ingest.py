"""Ingest: how fast `stepflow run` records a command that prints a lot, next to a bare pipe.

The command prints 1,000,000 lines of 80 bytes with a STEP_START marker every 10,000 lines.
Arms, round-robin, each on a fresh copy of an empty store:
  pipe   bash -c 'GEN | cat > /dev/null'          (the baseline: what the output costs anyway)
  plain  stepflow run --output plain -- GEN        (stdout passed through to /dev/null)
  quiet  stepflow run --output quiet -- GEN
With --pty, two more arms in the same rounds: plain+pty and quiet+pty (`run --pty`: the command
writes to a pseudo-terminal, the store gets the text with escapes stripped).
Lines persisted are counted in the store after each run (SUM(line_count) FROM logs).

    python benchmarks/bench_ingest.py [--runs 5] [--quick] [--lines N] [--every K] [--per-line] [--pty]
"""

from __future__ import annotations

import functools
import shlex
import subprocess
import time
from collections.abc import Callable

import common

TARGETS = {  # issue 2 (core), issue 6 (performance)
    "lines/s": (">= 300,000", ">= 500,000"),
    "ratio": ("<= 2x", "<= 1.3x"),
}


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, help="lines printed by the command (default 1,000,000; --quick 100,000)")
    p.add_argument("--every", type=int, default=10_000, help="a marker every K lines (default 10,000)")
    p.add_argument("--per-line", action="store_true",
                   help="the generator writes line by line (an ordinary, slower command) instead of 64 KiB blocks")
    p.add_argument("--pty", action="store_true", help="also the plain and quiet arms with `run --pty`")
    args = p.parse_args()
    arms = ["plain", "quiet", *(["plain+pty", "quiet+pty"] if args.pty else [])]
    total = args.lines or (100_000 if args.quick else 1_000_000)
    expected = total - common.markers_in(total, args.every)
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()

    with common.workdir("ingest") as work:
        gen = common.gen_argv(common.write_generator(work), total, args.every, per_line=args.per_line)
        template, storage = work / "template", work / "store"
        common.make_empty_store(template)
        env = common.bench_env(storage)
        common.header(f"ingest: {total:,} lines of 80 bytes, a marker every {args.every:,} lines"
                      f" ({expected:,} output lines to persist), written"
                      f" {'line by line' if args.per_line else 'in 64 KiB blocks'}", args, cmd, how, where=work)
        print(f"command  : {shlex.join(gen)}")
        print()

        persisted: dict[str, list[int]] = {name: [] for name in arms}
        rates: dict[str, list[float]] = {name: [] for name in arms}
        cpu: dict[str, list[float]] = {name: [] for name in ["pipe", *arms]}
        problems: list[str] = []

        def pipe() -> float:
            r = common.reaped(["bash", "-c", f"{shlex.join(gen)} | cat > /dev/null"], env=env)
            cpu["pipe"].append(r.cpu)
            return r.wall

        def arm(name: str) -> float:
            output, _, pty = name.partition("+")
            common.fresh_store(template, storage)
            errfile = work / f"stderr-{name}.txt"
            with open(errfile, "wb") as err:
                r = common.reaped([*cmd, "run", "--output", output, *(["--pty"] if pty else []), "--", *gen], env=env,
                                  stdout=subprocess.DEVNULL, stderr=err)
            (lines,) = common.query(common.database(storage), "SELECT COALESCE(SUM(line_count), 0) FROM logs")[0]
            stderr = errfile.read_text(errors="replace")
            if r.returncode != 0 or lines != expected:
                problems.append(f"{name}: exit {r.returncode}, {lines:,} lines persisted of {expected:,};"
                                f" stderr tail: {stderr[-300:]!r}")
            elif "stepflow:" in stderr and ("error" in stderr or "not fully recorded" in stderr):
                problems.append(f"{name}: stepflow complained: {stderr[-300:]!r}")
            persisted[name].append(lines)
            rates[name].append(lines / r.wall)
            cpu[name].append(r.cpu)
            return r.wall

        runners: dict[str, Callable[[], float]] = {"pipe": pipe}
        for name in arms:
            runners[name] = functools.partial(arm, name)
        walls = common.interleaved(runners, args.runs)
        for name in cpu:  # the warm-up round is not a figure
            cpu[name] = cpu[name][-args.runs:]
        for name in rates:
            rates[name] = rates[name][-args.runs:]
            persisted[name] = persisted[name][-args.runs:]

    base = common.median(walls["pipe"])
    rows: list[list[object]] = [[
        "GEN | cat > /dev/null", common.median(walls["pipe"]), common.spread(walls["pipe"]), 1.0, "-",
        total / base, common.median(cpu["pipe"]),
    ]]
    for name in arms:
        med = common.median(walls[name])
        output, _, pty = name.partition("+")
        rows.append([
            f"stepflow run --output {output}{' --pty' if pty else ''}", med, common.spread(walls[name]), med / base,
            min(persisted[name]), common.median(rates[name]), common.median(cpu[name]),
        ])
    common.table(["arm", "wall s (median)", "min-max", "x pipe", "lines persisted", "lines/s", "CPU s"], rows)
    print("  lines/s: pipe = lines read by cat / wall; stepflow = lines counted in the store / wall.")
    print("  CPU s: user+system of the arm's process tree (bash+GEN+cat, or stepflow+GEN), from wait4.")
    print()
    common.table(
        ["figure", "measured", "issue 2 target", "issue 6 target"],
        [
            ["lines/s persisted, plain", common.median(rates["plain"]), *TARGETS["lines/s"]],
            ["lines/s persisted, quiet", common.median(rates["quiet"]), *TARGETS["lines/s"]],
            ["wall, plain / pipe", f"{common.median(walls['plain']) / base:.2f}x", *TARGETS["ratio"]],
            ["wall, quiet / pipe", f"{common.median(walls['quiet']) / base:.2f}x", *TARGETS["ratio"]],
        ],
    )
    if args.pty:
        print()
        common.table(
            ["figure (--pty)", "measured"],
            [[f"wall, {o}+pty / {o}", f"{common.median(walls[o + '+pty']) / common.median(walls[o]):.2f}x"]
             for o in ("plain", "quiet")]
            + [[f"lines/s persisted, {o}+pty", common.median(rates[o + "+pty"])] for o in ("plain", "quiet")],
        )
    for problem in problems:
        common.warn(problem)
    if not problems:
        print(f"\nchecked: every stepflow run exited 0 and persisted exactly {expected:,} lines")
    common.footer(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

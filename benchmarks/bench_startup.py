"""Startup: what `stepflow run -- true` costs over bare `true`, and what its imports cost.

Arms, round-robin, each run to its end (spawn + exit, as a user sees it):
  true                       the floor: fork and exec of a tiny binary
  python -c pass             this Python's own start (site included), for scale
  stepflow --version         typer and the CLI package, no command
  stepflow ls                a store holding a few runs
  stepflow run -- true       the figure the issues set targets for
Then the 10 largest cumulative imports of `python -X importtime -m stepflow run -- true`.

    python benchmarks/bench_startup.py [--runs 21] [--quick]
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import time

import common

TARGET_RUN = ("<= 150 ms", "<= 80 ms")  # issue 2, issue 6: `stepflow run -- true` over bare `true`


def importtime(cmd_env: dict[str, str], top: int, runs: int) -> None:
    """Print the imports that cost most (medians over `runs` runs of -X importtime)."""
    samples: dict[str, list[tuple[int, int]]] = {}
    code = 0
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "stepflow", "run", "--", "true"],
                              env=cmd_env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        code = done.returncode
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            parts = line.removeprefix("import time:").split("|")
            if len(parts) != 3:
                continue
            try:
                self_us, cumulative_us = int(parts[0]), int(parts[1])
            except ValueError:
                continue
            samples.setdefault(parts[2].rstrip(), []).append((cumulative_us, self_us))
    if not samples:
        print(f"(no -X importtime output; exit {code})")
        return
    rows = [(common.median([c for c, _ in v]), common.median([s for _, s in v]), name) for name, v in samples.items()]
    # A name keeps its indentation: one space at the top level, two more per level of nesting.
    top_level = sum(c for c, _, name in rows if not name.startswith("  "))
    own = [name for name in samples if name.strip().startswith("stepflow")]
    print(f"imports of `python -X importtime -m stepflow run -- true` (medians of {runs} runs, exit {code}):"
          f" {len(rows)} modules, {top_level / 1000:.1f} ms at top level, {len(own)} of them stepflow's own")

    def depth(name: str) -> int:
        return (len(name) - len(name.lstrip()) - 1) // 2

    by_cumulative = sorted(rows, key=lambda r: r[0], reverse=True)[:top]
    common.table(["module (top by cumulative)", "depth", "cumulative ms", "self ms"],
                 [[name.strip(), depth(name), cum / 1000, own / 1000] for cum, own, name in by_cumulative])
    print()
    by_self = sorted(rows, key=lambda r: r[1], reverse=True)[:top]
    common.table(["module (top by self)", "depth", "cumulative ms", "self ms"],
                 [[name.strip(), depth(name), cum / 1000, own / 1000] for cum, own, name in by_self])
    print("  depth 0 = imported by the entry point or inside a command; cumulative includes what it imports.")
    print("  -X importtime adds its own overhead; read the ranking, not the absolute sum.")


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=21)
    p.add_argument("--top", type=int, default=10, help="how many imports to list (default 10)")
    args = p.parse_args()
    if args.quick:
        args.runs = min(args.runs, 5)
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()
    true = shutil.which("true") or "/bin/true"

    with common.workdir("startup") as work:
        storage = work / "store"
        env = common.bench_env(storage)
        common.header("startup: stepflow run -- true over bare true", args, cmd, how, where=work)
        if args.runs < 15:
            print(f"note: {args.runs} runs; startup is small and noisy, use >= 15 (the default is 21) for figures\n")
        for _ in range(5):  # a store with a few runs, for `ls`
            subprocess.run([*cmd, "run", "--output", "quiet", "--", true], env=env, check=False)

        def arm(argv: list[str]) -> float:
            r = common.reaped(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode != 0:
                common.warn(f"{' '.join(argv)} exited {r.returncode}")
            return r.wall * 1000

        arms = {
            "true": [true],
            "python -c pass": [sys.executable, "-c", "pass"],
            "stepflow --version": [*cmd, "--version"],
            "stepflow ls": [*cmd, "ls"],
            "stepflow run -- true": [*cmd, "run", "--output", "quiet", "--", true],
        }
        ms = common.interleaved({name: functools.partial(arm, argv) for name, argv in arms.items()}, args.runs,
                                warmup=2)
        (runs_recorded,) = common.query(common.database(storage), "SELECT COUNT(*) FROM executions")[0]

        base = common.median(ms["true"])
        rows = [[name, common.median(v), common.spread(v), common.median(v) - base] for name, v in ms.items()]
        common.table(["arm", "wall ms (median)", "min-max", "ms over true"], rows)
        print(f"  `stepflow run` used --output quiet (nothing to draw); the store held {runs_recorded} runs"
              " at the end.")
        print()
        over = common.median(ms["stepflow run -- true"]) - base
        common.table(["figure", "measured", "issue 2 target", "issue 6 target"],
                     [["stepflow run -- true, ms over true", over, *TARGET_RUN]])
        print()
        importtime(env, args.top, 1 if args.quick else 5)
    common.footer(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Startup: what `stepflow run -- true` costs over bare `true`, and what its imports cost.

Arms, round-robin, each run to its end (spawn + exit, as a user sees it):
  true                       the floor: fork and exec of a tiny binary
  python -c pass             this Python's own start (site included), for scale
  stepflow --version         the CLI package, no command
  stepflow ls                a store holding a few runs; on a pipe, and on a terminal (a pty)
  stepflow run -o quiet      the figure the issues set targets for
  stepflow run -o plain      plain lines on stderr
  stepflow run (live)        the live view, on a terminal (a pty)
Then the 10 largest cumulative imports of `python -X importtime -m stepflow run -- true`.
Issue 17's targets are over bare `true` on a machine where `python -c pass` took 9 ms: the
last column (over `python -c pass`) is the one that carries from machine to machine.

    python benchmarks/bench_startup.py [--runs 21] [--quick]
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import common

# issue 17: ms over bare `true` (its machine started Python in 9 ms)
TARGETS = {"stepflow run -o quiet -- true": "<= 40", "stepflow run -o plain -- true": "<= 45",
           "stepflow run -- true (live, pty)": "<= 45", "stepflow ls": "<= 40", "stepflow ls (pty)": "<= 40",
           "stepflow --version": "<= 25"}


def on_terminal(argv: list[str], env: dict[str, str]) -> float:
    """Wall ms of `argv` with a pseudo-terminal as its stdin, stdout and stderr, read to its end."""
    import pty

    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.execvpe(argv[0], argv, env)
    while True:
        try:
            if not os.read(fd, 65536):
                break
        except OSError:  # EIO: the child closed the terminal
            break
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        common.warn(f"{' '.join(argv)} exited {os.waitstatus_to_exitcode(status)} on a terminal")
    return wall * 1000


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
            "stepflow run -o quiet -- true": [*cmd, "run", "--output", "quiet", "--", true],
            "stepflow run -o plain -- true": [*cmd, "run", "--output", "plain", "--", true],
        }
        on_pty = {
            "stepflow ls (pty)": [*cmd, "ls"],
            "stepflow run -- true (live, pty)": [*cmd, "run", "--", true],
        }
        tty_env = {**env, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
        timed: dict[str, Callable[[], float]] = {name: functools.partial(arm, argv) for name, argv in arms.items()}
        timed.update({name: functools.partial(on_terminal, argv, tty_env) for name, argv in on_pty.items()})
        ms = common.interleaved(timed, args.runs, warmup=2)
        (runs_recorded,) = common.query(common.database(storage), "SELECT COUNT(*) FROM executions")[0]

        base = common.median(ms["true"])
        python = common.median(ms["python -c pass"])
        rows = [[name, common.median(v), common.spread(v), common.median(v) - base, TARGETS.get(name, "-"),
                 common.median(v) - python] for name, v in ms.items()]
        common.table(["arm", "wall ms (median)", "min-max", "ms over true", "issue 17 target",
                      "ms over python -c pass"], rows)
        print(f"  the store held {runs_recorded} runs at the end; (pty): stdin, stdout and stderr a terminal.")
        print()
        importtime(env, args.top, 1 if args.quick else 5)
    common.footer(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

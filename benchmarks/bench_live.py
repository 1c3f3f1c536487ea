"""A 1,000,000-line run under the live view, in a pseudo-terminal, against plain mode in the same terminal.

The command is benchmarks/common.py's generator: 1,000,000 lines of 80 bytes, a STEP_START
marker every 10,000 lines (100 steps). Both arms run `stepflow run` with a pseudo-terminal as
its stdin, stdout and stderr (so `--output live` draws for real, ~10 frames a second), and this
script drains the terminal as fast as it can, as a terminal emulator would:
  stepflow run --output plain    every line written to the terminal, byte for byte
  stepflow run --output live     the lines go to the model; Rich draws the steps and the tail
  stepflow run --output quiet    nothing drawn at all: what drawing costs is live - quiet
Wall time is fork to reaped, medians over --runs rounds (round-robin, one warm-up round), each
arm on a fresh copy of an empty store. Also: bytes the terminal received, and lines stored.
Issue 3's target: live <= 1.1x plain.

    python benchmarks/bench_live.py [--runs 5] [--quick] [--module] [--lines N]
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios
import time

import common

TARGET = "<= 1.1x plain"  # issue 3
EVERY = 10_000


def in_terminal(argv: list[str], env: dict[str, str], *, rows: int = 40, cols: int = 120) -> tuple[float, int, int]:
    """(wall seconds, exit status, bytes received) of `argv` run with a pseudo-terminal."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    received = 0
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(fd, 1 << 16)
            except OSError:  # EIO: the other side is closed
                break
            if not data:
                break
            received += len(data)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return time.perf_counter() - start, os.waitstatus_to_exitcode(status), received


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=5)
    p.add_argument("--lines", type=int, default=None, help="lines the command prints (default 1,000,000)")
    args = p.parse_args()
    total = args.lines or (100_000 if args.quick else 1_000_000)
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()
    with common.workdir("live") as work:
        common.header(f"{total:,} lines in a pseudo-terminal: --output live vs --output plain", args, cmd, how,
                      where=work)
        gen = common.write_generator(work)
        template = work / "template"
        common.make_empty_store(template)
        storage = work / "store"
        env = common.bench_env(storage)
        env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
        if env.pop("PYTHONDONTWRITEBYTECODE", None):
            print("note     : PYTHONDONTWRITEBYTECODE was set; unset for the measured commands")
        stats: dict[str, list[tuple[int, int]]] = {"plain": [], "live": [], "quiet": []}

        def arm(mode: str) -> float:
            common.fresh_store(template, storage)
            argv = [*cmd, "run", "--output", mode, "--", *common.gen_argv(gen, total, EVERY)]
            wall, code, received = in_terminal(argv, env)
            stored = common.query(common.database(storage), "SELECT coalesce(sum(line_count), 0) FROM logs")[0][0]
            expected = total - common.markers_in(total, EVERY)
            if code != 0 or stored != expected:
                common.warn(f"{mode}: exit {code}, {stored:,} of {expected:,} lines stored")
            stats[mode].append((received, stored))
            return wall

        results = common.interleaved({"plain": lambda: arm("plain"), "live": lambda: arm("live"),
                                      "quiet": lambda: arm("quiet")}, args.runs)
        plain, live, quiet = (common.median(results[m]) for m in ("plain", "live", "quiet"))
        rows = []
        for mode in ("plain", "live", "quiet"):
            values = results[mode]
            received, stored = stats[mode][-1]
            rows.append([f"stepflow run --output {mode}", common.median(values), common.spread(values),
                         total / common.median(values), received / 1e6, stored, common.median(values) / plain])
        common.table(["arm (in a pseudo-terminal)", "median s", "min-max s", "lines/s", "MB to terminal",
                      "lines stored", "x plain"], rows)
        print()
        print(f"target   : live {TARGET}: measured {live / plain:.2f}x"
              f" (and {live / quiet:.2f}x quiet, which draws nothing)")
        common.footer(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

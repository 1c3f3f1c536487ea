"""Shared helpers for the benchmark scripts: timing, the output generator, a temp store, tables.

Plain stdlib (plus apsw, which stepflow installs), so every script runs with the project's own
Python: `python benchmarks/bench_ingest.py --quick`. Nothing here asserts: the scripts print
figures, the baseline measured in the same run, the ratio and the issue's target, and exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STORAGE_ENV = "STEPFLOW_STORAGE_PATH"
LINE_BYTES = 80  # 79 bytes of text and the newline

# The generator the ingest, memory and parallel benchmarks wrap. It writes pre-built blocks of
# 64 KiB (slices of one prepared buffer, no per-line Python work), so it costs the same, and
# little, in every arm. Line 0, K, 2K, ... are `STEP_START:step-NNNNN` markers padded to 80 bytes.
# With a third argument `lines` it writes the same bytes one line at a time (sys.stdout.write per
# line), as a script that prints as it works would: a slower, more ordinary command.
GENERATOR = r'''
import sys

def per_line(total, every, width):
    # As a script that prints as it goes would: one text write per line.
    write = sys.stdout.write
    plain = "L" * (width - 1) + "\n"
    for i in range(total):
        if every > 0 and i % every == 0:
            marker = "STEP_START:step-%05d" % (i // every)
            write(marker + " " * (width - 1 - len(marker)) + "\n")
        else:
            write(plain)
    sys.stdout.flush()

def main():
    total, every = int(sys.argv[1]), int(sys.argv[2])
    width = 80
    if sys.argv[3:] == ["lines"]:
        return per_line(total, every, width)
    plain = (b"L" * (width - 1) + b"\n")
    out = sys.stdout.buffer
    block = 64 * 1024 // width * width
    if every <= 0:
        body = memoryview(plain * min(total, block // width))
        left = total
        while left:
            n = min(left, len(body) // width)
            out.write(body[: n * width])
            left -= n
        out.flush()
        return
    body = memoryview(plain * (every - 1))
    step, done = 0, 0
    while done < total:
        marker = b"STEP_START:step-%05d" % step
        out.write(marker + b" " * (width - 1 - len(marker)) + b"\n")
        done += 1
        n = min(every - 1, total - done)
        view = body[: n * width]
        for start in range(0, len(view), block):
            out.write(view[start : start + block])
        done += n
        step += 1
    out.flush()

main()
'''


def markers_in(total: int, every: int) -> int:
    """How many of `total` generated lines are markers (line 0, every, 2*every, ...)."""
    return 0 if every <= 0 else (total + every - 1) // every


def write_generator(folder: Path) -> Path:
    """Write the generator script into `folder`; run it as `gen_argv(path, total, every)`."""
    path = folder / "gen_lines.py"
    path.write_text(GENERATOR)
    return path


def gen_argv(path: Path, total: int, every: int, *, per_line: bool = False) -> list[str]:
    """The generator's command line: this Python, without site (faster, same in every arm)."""
    return [sys.executable, "-S", str(path), str(total), str(every), *(["lines"] if per_line else [])]


# -- which stepflow ------------------------------------------------------------------------------


def stepflow_command(force_module: bool = False) -> tuple[list[str], str]:
    """How to start stepflow, preferring the console script a user would type.

    The script next to this Python (the venv's bin/) comes first, then `stepflow` on PATH, then
    `python -m stepflow`. Returns the argv prefix and a line saying which was chosen.
    """
    if not force_module:
        beside = Path(sys.executable).parent / "stepflow"
        if beside.is_file() and os.access(beside, os.X_OK):
            return [str(beside)], f"console script {beside}"
        found = shutil.which("stepflow")
        if found:
            return [found], f"console script {found} (from PATH)"
    return [sys.executable, "-m", "stepflow"], f"{sys.executable} -m stepflow"


# -- arguments, environment, header --------------------------------------------------------------


def parser(description: str, *, runs: int = 5) -> argparse.ArgumentParser:
    """The options every script shares: --runs, --quick, --module."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--runs", type=int, default=runs, help=f"timed runs per arm; medians are reported (default {runs})")
    p.add_argument("--quick", action="store_true", help="small sizes, to check the script works in seconds")
    p.add_argument("--module", action="store_true", help="run `python -m stepflow` instead of the console script")
    return p


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary folder on the same disk as /tmp (not tmpfs here), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"stepflow-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def bench_env(storage: Path) -> dict[str, str]:
    """This environment with STEPFLOW_STORAGE_PATH pointing at `storage`.

    Other STEPFLOW_* settings are kept on purpose (to measure e.g. STEPFLOW_BUFFER_SIZE);
    `header` lists them so a figure is never read without them.
    """
    env = dict(os.environ)
    env[STORAGE_ENV] = str(storage)
    env.pop("NO_COLOR", None)
    # Users' Pythons cache compiled modules; with this set every command recompiles stepflow.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def filesystem(path: Path) -> str:
    """The file system type holding `path` (tmpfs makes fsync free: say so)."""
    best, kind = "", "?"
    target = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")):
                if len(parts[1]) >= len(best):
                    best, kind = parts[1], parts[2]
    return kind


def stepflow_version(cmd: Sequence[str]) -> str:
    done = subprocess.run([*cmd, "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).strip() or f"exit {done.returncode}"


def git_head() -> str:
    """The project's commit, so a figure can be tied to the code it measured."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "stepflow"],
                           capture_output=True, text=True)
    head = done.stdout.strip() or "?"
    return head + (" (stepflow/ has uncommitted changes)" if dirty.stdout.strip() else "")


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def header(title: str, args: argparse.Namespace, cmd: Sequence[str], how: str, *, where: Path | None = None) -> None:
    """What was measured, with what, on what: printed before the figures."""
    print(f"== {title}")
    print(f"stepflow : {stepflow_version(cmd)} at commit {git_head()}; run as {how}")
    print(f"python   : {platform.python_implementation()} {platform.python_version()} ({sys.executable})")
    print(f"machine  : {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}")
    if where is not None:
        print(f"store    : {where} on {filesystem(where)}")
    print(f"mode     : {'--quick (small sizes)' if args.quick else 'full size'}, medians of {args.runs} runs per arm")
    others = sorted(k for k in os.environ if k.startswith("STEPFLOW_") and k != STORAGE_ENV)
    if others:
        print("settings : " + ", ".join(f"{k}={os.environ[k]}" for k in others))
    print(f"load avg : {loadavg()} (1/5/15 min) at start; the machine may be shared: compare ratios, not absolutes")
    print()


def footer(started: float) -> None:
    print()
    print(f"load avg : {loadavg()} at end; took {time.perf_counter() - started:.1f} s")


# -- timing ------------------------------------------------------------------------------------


def timed(argv: Sequence[str] | str, **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Wall seconds of one subprocess run, start to reaped (fork and exec included)."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    start = time.perf_counter()
    done = subprocess.run(argv, **kwargs)
    return time.perf_counter() - start, done


@dataclass(frozen=True, slots=True)
class Reaped:
    """One process run to its end, reaped with wait4."""

    wall: float  # seconds, spawn to reaped
    returncode: int
    cpu: float  # user+system seconds of the process and the children it reaped
    maxrss_kib: int  # Linux: max(own peak RSS, largest reaped descendant's), see bench_memory.py


def reaped(argv: Sequence[str] | str, **kwargs: Any) -> Reaped:
    """Run `argv` like subprocess.run, but reap it with os.wait4 to get its rusage too."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, **kwargs)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Reaped(wall, proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """min-max, to show how noisy a median is."""
    return f"{min(values):.3g}-{max(values):.3g}" if values else "-"


def interleaved(arms: dict[str, Callable[[], float]], runs: int, *, warmup: int = 1) -> dict[str, list[float]]:
    """Run every arm `runs` times, round-robin, after `warmup` untimed rounds.

    Round-robin spreads a burst of load from other users over all arms alike, so their ratio
    stays fair even when the absolute figures move.
    """
    for _ in range(warmup):
        for fn in arms.values():
            fn()
    results: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(runs):
        for name, fn in arms.items():
            results[name].append(fn())
    return results


# -- the store ---------------------------------------------------------------------------------


def database(storage: Path) -> Path:
    return storage / "database" / "stepflow.db"


def make_empty_store(storage: Path) -> Path:
    """A store created by stepflow's own schema (migrations applied), closed; returns the db file."""
    from stepflow.config import load_settings
    from stepflow.store import open_store

    store = open_store(load_settings(storage=storage))
    store.close()
    return database(storage)


def fresh_store(template: Path, storage: Path) -> None:
    """`storage` becomes a copy of the empty template store (an existing store, as users have)."""
    shutil.rmtree(storage, ignore_errors=True)
    shutil.copytree(template, storage)


def query(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of a read-only query, on a connection of its own."""
    import apsw

    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        conn.setbusytimeout(30000)
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


# -- printing ----------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table (left-aligned text, right-aligned numbers), for a terminal or a note."""
    cells = [[str(c) for c in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) and rows for i in range(len(headers))]
    for n, row in enumerate(cells):
        out = [c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(out).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def warn(message: str) -> None:
    """Loud on purpose: a figure measured on a broken run must not be quoted."""
    bar = "!" * 78
    print(f"\n{bar}\nWARNING: {message}\n{bar}\n", flush=True)

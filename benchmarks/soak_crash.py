"""Crash soak: kill -9 `stepflow run` at random moments, and check what a crash may cost.

Each iteration starts a run whose command prints steadily (a step every 50 lines), waits a
random time, reads from another connection what the store has committed, kills stepflow with
SIGKILL, and then checks:
- the store: `PRAGMA integrity_check` is ok;
- nothing committed is lost: the lines and steps counted just before the kill are still there;
- the run becomes `abandoned` the next time it is looked at (`stepflow show ID --json`);
- the command does not run on: its process group is gone within --kill-grace (+2 s).

Usage: python benchmarks/soak_crash.py [--iterations 50] [--quick]
Prints a table and a summary; exits 0 (a figure, not a test).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import common

STEADY = (
    "import os, sys, time\n"
    "open(sys.argv[1], 'w').write(str(os.getpgrp()))\n"
    "for i in range(1_000_000):\n"
    "    print(f'STEP_START:s{i}' if i % 50 == 0 else f'line {i} ' + 'x' * 60, flush=True)\n"
    "    time.sleep(0.0005)\n"
)


def committed(db: Path) -> tuple[str | None, int, int]:
    """(run id, lines, steps) committed so far, read as any other process would."""
    if not db.exists():
        return None, 0, 0
    try:
        rows = common.query(db, "SELECT id FROM executions")
        if not rows:
            return None, 0, 0
        run_id = rows[0][0]
        lines = common.query(db, "SELECT COALESCE(SUM(line_count), 0) FROM logs WHERE execution_id = ?", (run_id,))
        steps = common.query(db, "SELECT COUNT(*) FROM steps WHERE execution_id = ?", (run_id,))
        return run_id, int(lines[0][0]), int(steps[0][0])
    except Exception:  # noqa: BLE001 - a store still being created reads as empty
        return None, 0, 0


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def one(cmd: list[str], folder: Path, seed: int, grace: float) -> dict[str, object]:
    storage = folder / f"store-{seed}"
    env = common.bench_env(storage)
    db = common.database(storage)
    pgid_file = folder / f"pgid-{seed}"
    proc = subprocess.Popen([*cmd, "run", "--output", "quiet", "--kill-grace", f"{grace:g}", "--",
                             sys.executable, "-c", STEADY, str(pgid_file)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.Random(seed).uniform(0.05, 2.0))
    run_id, lines_before, steps_before = committed(db)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = time.monotonic()
    while not pgid_file.exists() or not pgid_file.read_text():  # killed before the command started?
        if time.monotonic() - killed_at > 2:
            break
        time.sleep(0.01)
    pgid = int(pgid_file.read_text() or 0) if pgid_file.exists() else 0
    orphan = pgid > 0
    while orphan and time.monotonic() - killed_at < grace + 2:
        if not group_alive(pgid):
            orphan = False
            break
        time.sleep(0.05)
    if orphan:  # clean up after a failure the table reports
        os.killpg(pgid, signal.SIGKILL)
    integrity = common.query(db, "PRAGMA integrity_check")[0][0] if db.exists() else "no store yet"
    _, lines_after, steps_after = committed(db)
    status = None
    if run_id is not None:
        shown = subprocess.run([*cmd, "show", run_id, "--json"], env=env, capture_output=True)
        status = json.loads(shown.stdout)["status"] if shown.returncode == 0 else f"show failed: {shown.stderr!r}"
    return {
        "seed": seed, "integrity": integrity, "lines_before": lines_before, "lines_after": lines_after,
        "steps_before": steps_before, "steps_after": steps_after, "status": status, "orphan": orphan,
    }


def main() -> int:
    p = common.parser(__doc__.splitlines()[0], runs=1)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--kill-grace", type=float, default=1.0)
    args = p.parse_args()
    iterations = 5 if args.quick else args.iterations
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()
    with common.workdir("soak") as folder:
        common.header("crash soak: kill -9 of stepflow at random moments", args, cmd, how, where=folder)
        results = [one(cmd, folder, seed, args.kill_grace) for seed in range(iterations)]
    rows = [(r["seed"], r["integrity"], r["lines_before"], r["lines_after"], r["steps_before"], r["steps_after"],
             r["status"] or "-", "yes" if r["orphan"] else "no") for r in results]
    common.table(("seed", "integrity", "lines seen", "lines after", "steps seen", "steps after", "status after",
                  "command left running"), rows)
    bad_integrity = sum(r["integrity"] not in ("ok", "no store yet") for r in results)
    lost_lines = sum(max(0, int(r["lines_before"]) - int(r["lines_after"])) for r in results)  # type: ignore[call-overload]
    lost_steps = sum(max(0, int(r["steps_before"]) - int(r["steps_after"])) for r in results)  # type: ignore[call-overload]
    not_abandoned = sum(r["status"] not in (None, "abandoned") for r in results)
    orphans = sum(bool(r["orphan"]) for r in results)
    print()
    common.table(("figure", "measured"), [
        ("iterations (kill -9 at 0.05-2 s)", iterations),
        ("integrity failures", bad_integrity),
        ("committed lines lost", lost_lines),
        ("committed steps lost", lost_steps),
        ("runs not shown as abandoned", not_abandoned),
        ("commands left running after grace + 2 s", orphans),
    ])
    if bad_integrity or lost_lines or lost_steps or not_abandoned or orphans:
        common.warn("the soak found a problem; see the rows above")
    common.footer(started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

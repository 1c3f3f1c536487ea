"""Migrate: a 100,000-run StepFlow Monitor store with step log files to WAL, while a reader,
a writer and `stepflow run`s keep going.

The store comes from the project's own builder, tests/legacy_store.py (the real pre-WAL
format, step log files and artifact copies included; --no-files for rows only), built once;
every timed run migrates a fresh copy of it. During each run separate processes work on the
database, as the legacy server and its users would:
  reader  SELECT the 10 newest runs and the running ones (plain APSW connection)
  writer  INSERT one run with the legacy columns only, autocommit (plain APSW connection)
  runs    `stepflow run -- echo` one after another: each must exit 0 and be recorded
The longest lock hold is the longest write transaction migrate itself ran (its schema
transaction, or the longest chunk of the log import), as it reports them.
Figures (medians over the runs, with min-max):
  runs/s          100,000 / wall time of the `stepflow migrate --to-wal` process, start to exit
  runs/s (inner)  100,000 / the time migrate reports (without Python's start-up)
  phases          backup copy, backup verify, switch to WAL, transaction, check after
  reader/writer   the longest single read / insert during the migration, and before it (baseline)
Every run is checked: exit 0, the writer's rows all there, no reader/writer errors, integrity ok.

    python benchmarks/bench_migrate.py [--runs 3] [--quick] [--executions N] [--no-files]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import legacy_store  # noqa: E402  (the project's builder of legacy stores)

TARGET = ">= 20,000 runs/s with step log files, no lock held > 1 s (issue 9)"

POLLER = r"""
import apsw, datetime, json, os, sys, time, uuid
db, stop, up, role = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
conn = apsw.Connection(db)
conn.setbusytimeout(60000)
ops, errors, written = [], [], []
open(up, "w").close()
while not os.path.exists(stop):
    started = time.monotonic()
    try:
        if role == "reader":
            conn.execute("SELECT id, name, status FROM executions ORDER BY rowid DESC LIMIT 10").fetchall()
            conn.execute("SELECT COUNT(*) FROM executions WHERE status = 'running'").fetchall()
        else:
            run_id = str(uuid.uuid4())
            conn.execute("INSERT INTO executions (id, name, command, status, created_at) VALUES (?, ?, ?, ?, ?)",
                         (run_id, "bench writer", "true", "completed", datetime.datetime.now().isoformat()))
            written.append(run_id)
    except Exception as exc:
        errors.append(repr(exc))
    ops.append((started, time.monotonic() - started))
    time.sleep(0.003 if role == "reader" else 0.005)
print(json.dumps({"ops": ops, "errors": errors[:5], "error_count": len(errors), "written": written}))
"""


def poller(work: Path, db: Path, role: str) -> tuple[subprocess.Popen[bytes], Path]:
    stop, up = work / f"{role}.stop", work / f"{role}.up"
    for path in (stop, up):
        path.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", POLLER, str(db), str(stop), str(up), role], stdout=subprocess.PIPE)
    while not up.exists():
        time.sleep(0.005)
    return proc, stop


def worst(ops: list[list[float]], start: float, end: float) -> tuple[float, float, int]:
    """Longest op that overlapped [start, end], the longest before start, and how many overlapped."""
    during = [d for t, d in ops if t <= end and t + d >= start]
    before = [d for t, d in ops if t + d < start]
    return (max(during) if during else float("nan"), max(before) if before else float("nan"), len(during))


def one_run(cmd: list[str], template: Path, work: Path, n: int) -> dict[str, Any]:
    storage = work / "store"
    shutil.rmtree(storage, ignore_errors=True)
    shutil.copytree(template, storage)
    db = common.database(storage)
    reader, reader_stop = poller(work, db, "reader")
    writer, writer_stop = poller(work, db, "writer")
    time.sleep(0.3)  # a baseline for both before the migration starts
    runs: list[tuple[int, float, str]] = []
    errors: list[str] = []
    migrating = threading.Event()
    migrating.set()

    def stepflow_runs() -> None:
        # From the moment the migration holds its lock (a run that ended on the legacy store
        # before the migration began cannot be recorded there: it was not started during it).
        lock = db.with_name(db.name + ".maint")
        while migrating.is_set() and not (lock.exists() and lock.stat().st_size):
            time.sleep(0.002)
        k = 0
        while migrating.is_set():
            name = f"bench run {k}"
            t = time.monotonic()
            done = subprocess.run([*cmd, "run", "-n", name, "--", "echo", "recorded"], env=common.bench_env(storage),
                                  capture_output=True, stdin=subprocess.DEVNULL)
            runs.append((done.returncode, time.monotonic() - t, name))
            if done.returncode != 0 or done.stderr:
                errors.append(f"{name}: exit {done.returncode}: {done.stderr.decode(errors='replace')[-300:]}")
            k += 1

    start = time.monotonic()
    launcher = threading.Thread(target=stepflow_runs)
    launcher.start()
    done = subprocess.run([*cmd, "migrate", "--to-wal", "--json"], env=common.bench_env(storage),
                          capture_output=True, stdin=subprocess.DEVNULL)
    end = time.monotonic()
    migrating.clear()
    launcher.join()
    time.sleep(0.3)
    for stop in (reader_stop, writer_stop):
        stop.touch()
    r, w = json.loads(reader.communicate()[0]), json.loads(writer.communicate()[0])
    if done.returncode != 0:
        common.warn(f"migrate failed (exit {done.returncode}): {done.stderr.decode(errors='replace')}")
        return {}
    report = json.loads(done.stdout)
    kept = {row[0] for row in common.query(db, "SELECT id FROM executions WHERE name = 'bench writer'")}
    problems = []
    if r["error_count"] or w["error_count"]:
        problems.append(f"reader errors {r['errors']}, writer errors {w['errors']}")
    if kept != set(w["written"]):
        problems.append(f"{len(set(w['written']) - kept)} writer rows missing after the migration")
    if report["counts_after"]["executions"] < n or report["integrity"] != "ok":
        problems.append(f"counts/integrity: {report['counts_after']} {report['integrity']}")
    recorded = {str(row[0]) for row in common.query(
        db, "SELECT e.name FROM executions e JOIN logs l ON l.execution_id = e.id WHERE e.name LIKE 'bench run %'"
        " AND e.status = 'completed' AND l.data = X'7265636f72646564'")}
    lost = [name for rc, _, name in runs if rc != 0 or name not in recorded]
    if lost:
        problems.append(f"{len(lost)} of {len(runs)} stepflow runs failed or were not recorded: {lost[:3]}"
                        f" {errors[:2]}")
    for problem in problems:
        common.warn(problem)
    hold = max(report["phases"].get("transaction", 0.0), report.get("lock_hold_max", 0.0),
               report["phases"].get("switch_to_wal", 0.0))
    reader_during, reader_before, reads = worst(r["ops"], start, end)
    writer_during, writer_before, writes = worst(w["ops"], start, end)
    return {
        "wall": end - start, "inner": report["seconds"], "phases": report["phases"],
        "reader_during": reader_during, "reader_before": reader_before, "reads": reads,
        "writer_during": writer_during, "writer_before": writer_before, "writes": writes,
        "writer_rows": len(w["written"]), "ok": not problems, "hold": hold,
        "chunks": report.get("import_chunks", 0), "log_lines": report.get("log_lines", 0),
        "runs": len(runs), "run_max": max((d for _, d, _ in runs), default=float("nan")),
    }


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=3)
    p.add_argument("--executions", type=int, help="runs in the legacy store (default 100,000; --quick 10,000)")
    p.add_argument("--no-files", action="store_true", help="rows only: no step log files or artifact copies")
    args = p.parse_args()
    n = args.executions or (10_000 if args.quick else 100_000)
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()
    with common.workdir("migrate") as work:
        template = work / "template"
        common.header("stepflow migrate --to-wal of a legacy store, with a reader and a writer polling", args, cmd,
                      how, where=work)
        t = time.perf_counter()
        built = legacy_store.build(template, executions=n, files=not args.no_files)
        size = common.database(template).stat().st_size
        print(f"legacy store: {n:,} runs, {built['steps']:,} steps, {built['log_files']:,} step log files with"
              f" {built['log_lines']:,} lines, database {size / 1024 / 1024:.0f} MiB, built in"
              f" {time.perf_counter() - t:.1f} s (tests/legacy_store.py, pre-WAL format"
              f"{', --no-files' if args.no_files else ''}); each run migrates a fresh copy")
        print()
        results = [one_run(cmd, template, work, n) for _ in range(args.runs)]
        results = [r for r in results if r]
        if not results:
            return 0
        rows = []
        for i, r in enumerate(results, 1):
            rows.append((i, n / r["wall"], n / r["inner"], r["wall"], r["inner"], r["hold"] * 1000, r["chunks"],
                         r["reader_during"] * 1000, r["reader_before"] * 1000, r["writer_during"] * 1000,
                         r["writer_before"] * 1000, r["runs"], r["run_max"] * 1000, "yes" if r["ok"] else "NO"))
        common.table(("run", "runs/s", "runs/s (inner)", "wall s", "inner s", "lock hold max ms", "chunks",
                      "reader max ms", "reader base ms", "writer max ms", "writer base ms", "stepflow runs",
                      "run max ms", "checks ok"), rows)
        print()
        phases = {k: common.median([r["phases"].get(k, 0.0) for r in results]) for k in results[0]["phases"]}
        print("phases (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in phases.items()))
        walls, inners = [r["wall"] for r in results], [r["inner"] for r in results]
        print()
        print(f"runs/s          median {n / common.median(walls):,.0f} (range {n / max(walls):,.0f}-"
              f"{n / min(walls):,.0f}); target {TARGET}")
        print(f"runs/s (inner)  median {n / common.median(inners):,.0f} (range {n / max(inners):,.0f}-"
              f"{n / min(inners):,.0f}); without Python's start-up")
        print(f"lock hold       at most {max(r['hold'] for r in results) * 1000:.0f} ms (the longest write"
              " transaction of migrate: its schema transaction or a log-import chunk)")
        print(f"stepflow runs   {sum(r['runs'] for r in results)} started during the migrations, all recorded:"
              f" {'yes' if all(r['ok'] for r in results) else 'NO'}; the slowest took"
              f" {max(r['run_max'] for r in results) * 1000:.0f} ms start to exit")
        for role in ("reader", "writer"):
            during = [r[f"{role}_during"] * 1000 for r in results]
            before = [r[f"{role}_before"] * 1000 for r in results]
            print(f"{role} waited    at most {max(during):.0f} ms during a migration (median of the runs' maxima"
                  f" {common.median(during):.0f} ms); before it, at most {max(before):.0f} ms")
    common.footer(started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

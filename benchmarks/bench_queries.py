"""Queries: `stepflow ls`, `show` and `logs --step` stay fast, and flat, as the store grows.

Stores of 100,000 and 1,000,000 runs (and a tiny one of 20, for flatness) are built fast by
inserting rows directly with APSW, in big transactions, into a store created by stepflow's own
schema; they are cached under --cache (default /tmp/stepflow-bench) so reruns skip the build.
  100,000 runs: 5 steps each, one log block of 5 lines per step
  1,000,000 runs: lighter, 2 steps each, one log block of 2 lines per step
  every store: probe runs (the one `show`/`logs` read is in the middle of the store) with 5 steps
  of 5 lines, so every command prints the same thing whatever the store's size
Each command's median wall time minus the median of `stepflow --version` (measured in the same
round-robin) is the query's cost; then EXPLAIN QUERY PLAN of the exact SQL each command runs.

    python benchmarks/bench_queries.py [--runs 11] [--quick] [--cache DIR] [--rebuild]
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw
import common

BUILD_VERSION = 1  # bump when the shape of the built stores changes
TARGET = "<= 30 ms over --version, flat as the store grows"  # issue 6
NAMES = ["deploy", "backup-db", "nightly-etl", "build", "test-suite", "release", "sync-assets", "reindex",
         "cleanup", "report", "migrate-db", "smoke", "canary", "rotate-logs", "warm-cache", "import-feed"]
STEP_NAMES = ["checkout", "build", "test", "package", "publish"]
YEAR = 365 * 86400.0
BATCH = 20_000  # runs per transaction


def uuid_from(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def build(storage: Path, runs: int, steps: int, lines: int, probes: int = 3) -> dict[str, Any]:
    """Fill a new store with `runs` runs; returns what the benchmark needs to know about it."""
    from stepflow.config import load_settings
    from stepflow.store.sqlite import open_sqlite

    shutil.rmtree(storage, ignore_errors=True)
    settings = load_settings(storage=storage)
    store = open_sqlite(settings.database_url, settings)  # SQLite by nature: it times SQLite's plans
    conn: apsw.Connection = store.conn
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    indexes = [(name, sql) for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")]
    for name, _ in indexes:  # rebuilt after the load: sorting once beats a million random inserts
        conn.execute(f"DROP INDEX {name}")
    rng = random.Random(runs)
    now = time.time()
    start_ts = now - YEAR
    probe_at = {runs // 2, runs - 2, 0} if runs >= 3 else set(range(runs))
    probe_at = set(sorted(probe_at)[:probes])
    line = b"x" * 79
    blocks = {n: b"\n".join([line] * n) for n in (lines, 5)}
    probe_ids: dict[int, str] = {}
    n = 0
    while n < runs:
        ex_rows, step_rows, log_rows = [], [], []
        with store_txn(conn):
            for i in range(n, min(runs, n + BATCH)):
                run_id = uuid_from(rng)
                probe = i in probe_at
                if probe:
                    probe_ids[i] = run_id
                k_steps, k_lines = (5, 5) if probe else (steps, lines)
                ts = start_ts + YEAR * i / max(runs, 1)
                status = "completed" if probe or i % 13 else "failed"
                if not probe and i % 97 == 0:
                    status = "cancelled"
                done_steps = k_steps if status == "completed" else k_steps - 1
                ex_rows.append((
                    run_id, NAMES[i % len(NAMES)], f"bash {NAMES[i % len(NAMES)]}.sh --fast", "/srv/jobs", status,
                    0 if status == "completed" else 1,
                    None if status == "completed" else "command exited with status 1",
                    iso(ts), iso(ts), iso(ts + 42.0), "{}", "ops", json.dumps(["ci"] if i % 3 else ["prod", "deploy"]),
                    k_steps, done_steps, k_steps - 1, "{}", ts, "bench-host", 1000 + i % 30000, ts, "[]",
                    1.5, 50_000_000, 3, k_steps * k_lines, 0,
                ))
                first = 0
                for s in range(k_steps):
                    s_ts = ts + s * 8.0
                    s_status = "completed" if s < done_steps else "failed"
                    step_rows.append((
                        f"{run_id[:24]}{s:012d}", run_id, STEP_NAMES[s % len(STEP_NAMES)], None, s, s_status,
                        0 if s_status == "completed" else 1, None if s_status == "completed" else "step failed",
                        iso(s_ts), iso(s_ts), iso(s_ts + 8.0), None, 0, "{}",
                    ))
                    log_rows.append((run_id, s, 1, first, k_lines, s_ts + 1.0, blocks[k_lines], 0))
                    first += k_lines
            conn.executemany(
                "INSERT INTO executions (id, name, command, working_directory, status, exit_code, error_message,"
                " created_at, started_at, completed_at, environment, user_name, tags, total_steps, completed_steps,"
                " current_step_index, metadata, created_ts, host, pid, pid_started, warnings, cpu_seconds, peak_rss,"
                " max_processes, line_count, lost_lines)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ex_rows)
            conn.executemany(
                "INSERT INTO steps (id, execution_id, name, description, step_index, status, exit_code,"
                " error_message, created_at, started_at, completed_at, estimated_duration, stop_on_error, metadata)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", step_rows)
            conn.executemany(
                "INSERT INTO logs (execution_id, step_index, stream, first_line, line_count, ts, data, cut)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", log_rows)
        n += BATCH
    with store_txn(conn):
        for _, sql in indexes:
            conn.execute(sql)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    store.close()
    middle = probe_ids[min(probe_ids, key=lambda i: abs(i - runs // 2))]
    return {"runs": runs, "steps": steps, "lines": lines, "probe": middle, "build_version": BUILD_VERSION}


@contextlib.contextmanager
def store_txn(conn: apsw.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def cached_store(cache: Path, runs: int, steps: int, lines: int, rebuild: bool) -> tuple[Path, dict[str, Any], str]:
    """The store for this size, built unless a matching one is cached; returns (storage, info, how)."""
    from stepflow.store import schema

    storage = cache / f"queries-{runs}-runs-schema{schema.CURRENT_VERSION}"
    marker = storage / "built.json"
    want = {"runs": runs, "steps": steps, "lines": lines, "build_version": BUILD_VERSION,
            "schema": schema.CURRENT_VERSION}
    if not rebuild and marker.exists():
        info = json.loads(marker.read_text())
        if all(info.get(k) == v for k, v in want.items()) and common.database(storage).exists():
            return storage, info, "cached"
    t = time.perf_counter()
    info = build(storage, runs, steps, lines) | want
    info["build_seconds"] = round(time.perf_counter() - t, 1)
    marker.write_text(json.dumps(info))
    return storage, info, f"built in {info['build_seconds']} s"


def capture_sql(storage: Path, argv: list[str]) -> list[tuple[str, tuple[Any, ...]]]:
    """The SQL (and bindings) a stepflow command runs, caught by running it in this process."""
    from stepflow.cli import main as cli_main

    seen: list[tuple[str, tuple[Any, ...]]] = []

    def tracer(cursor: apsw.Cursor, sql: str, bindings: Any) -> bool:
        seen.append((sql, tuple(bindings) if isinstance(bindings, list | tuple) else ()))
        return True

    def hook(conn: apsw.Connection) -> None:
        conn.exec_trace = tracer

    apsw.connection_hooks.append(hook)
    saved = sys.stdout
    sys.stdout = io.TextIOWrapper(io.BytesIO())
    try:
        cli_main(["--storage", str(storage), *argv])
    finally:
        sys.stdout = saved
        apsw.connection_hooks.remove(hook)
    skip = ("PRAGMA", "BEGIN", "COMMIT", "ROLLBACK", "SELECT 1 FROM SQLITE_MASTER")
    out, keys = [], set()
    for sql, bindings in seen:
        if sql.strip().upper().startswith(skip) or sql in keys:
            continue
        keys.add(sql)
        out.append((sql, bindings))
    return out


def explain(storage: Path, sql: str, bindings: tuple[Any, ...], runs: int) -> tuple[list[str], float]:
    """The query plan lines and the median ms of the query itself (all rows fetched)."""
    conn = apsw.Connection(str(common.database(storage)), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        plan = [str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", bindings)]
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            conn.execute(sql, bindings).fetchall()
            times.append((time.perf_counter() - t) * 1000)
    finally:
        conn.close()
    return plan, common.median(times)


def main() -> int:
    # The figures are differences of ~10-30 ms between processes of ~100 ms: more runs than 5.
    p = common.parser(__doc__.split("\n\n")[0], runs=11)
    p.add_argument("--cache", type=Path, default=Path("/tmp/stepflow-bench"),
                   help="folder for the built stores, kept between runs (default /tmp/stepflow-bench)")
    p.add_argument("--rebuild", action="store_true", help="build the stores again even if cached")
    p.add_argument("--sizes", help="comma-separated run counts (default 100000,1000000; --quick 2000,20000)")
    args = p.parse_args()
    if args.quick:
        args.runs = min(args.runs, 5)
    sizes = [int(s) for s in (args.sizes or ("2000,20000" if args.quick else "100000,1000000")).split(",")]
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()
    args.cache.mkdir(parents=True, exist_ok=True)
    common.header("queries: ls, show and logs --step on growing stores", args, cmd, how, where=args.cache)

    stores: dict[str, tuple[Path, dict[str, Any]]] = {}
    for runs in [20, *sizes]:
        steps, lines = (5, 5) if runs <= 100_000 else (2, 2)
        storage, info, done = cached_store(args.cache, runs, steps, lines, args.rebuild)
        size_mb = common.database(storage).stat().st_size / 1024 / 1024
        print(f"store {runs:>9,} runs: {steps} steps x 1 block of {lines} lines each, {size_mb:,.0f} MB, {done}:"
              f" {storage}")
        stores[f"{runs:,} runs"] = (storage, info)
    print()

    def commands(info: dict[str, Any]) -> dict[str, list[str]]:
        prefix = info["probe"][:8]
        return {
            "ls": ["ls"],
            "show ID8": ["show", prefix],
            "logs ID8 --step 2": ["logs", prefix, "--step", "2"],
            "ls --status failed (extra)": ["ls", "--status", "failed"],
            "ls --name 'backup*' (extra)": ["ls", "--name", "backup*"],
        }

    env = common.bench_env(args.cache / "unused-store")  # every command gets --storage

    errfile = args.cache / "stderr.txt"

    def arm(argv: list[str]) -> float:
        with open(errfile, "wb") as err:
            r = common.reaped(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        if r.returncode != 0:
            common.warn(f"{' '.join(argv)} exited {r.returncode}: {errfile.read_text(errors='replace')[-300:]!r}")
        return r.wall * 1000

    arms: dict[str, Any] = {"--version": lambda: arm([*cmd, "--version"])}
    for label, (storage, info) in stores.items():
        for name, argv in commands(info).items():
            arms[f"{label}|{name}"] = (lambda a=[*cmd, "--storage", str(storage), *argv]: arm(a))
    ms = common.interleaved(arms, args.runs)
    base = common.median(ms["--version"])
    print(f"stepflow --version: {base:.1f} ms (median; min-max {common.spread(ms['--version'])})")
    print()
    labels = list(stores)
    rows = []
    for name in commands(next(iter(stores.values()))[1]):
        row: list[Any] = [f"stepflow {name}"]
        for label in labels:
            row.append(common.median(ms[f"{label}|{name}"]) - base)
        row.append(row[-1] - row[1])
        rows.append(row)
    common.table(["command (ms over --version, median)", *labels, f"growth ms ({labels[-1]} - {labels[0]})"], rows)
    print(f"  target (issue 6): {TARGET}; ID8 = the first 8 characters of a run in the middle of the store,"
          " as copied from `ls`.")
    print()

    largest = labels[-1]
    storage, info = stores[largest]
    print(f"EXPLAIN QUERY PLAN of the SQL each command runs (caught in-process), on the {largest} store,"
          " with the query's own median ms on each store:")
    for name, argv in commands(info).items():
        print(f"\n  stepflow {' '.join(argv)}")
        per_store = {label: capture_sql(s, commands(i)[name]) for label, (s, i) in stores.items()}
        for n, (sql, bindings) in enumerate(per_store[largest]):
            timings = []
            for label in labels[1:]:
                other = per_store[label]
                if n < len(other):
                    timings.append(f"{label}: {explain(stores[label][0], *other[n], args.runs)[1]:.2f} ms")
            plan, _ = explain(storage, sql, bindings, 1)
            short = " ".join(sql.split())
            print(f"    SQL  {short[:150]}{'...' if len(short) > 150 else ''}")
            print(f"         ({'; '.join(timings)})")
            for line in plan:
                flag = "   <- whole table" if line.startswith("SCAN") and "USING" not in line else ""
                flag = flag or ("   <- sorts" if "TEMP B-TREE" in line else "")
                print(f"         {line}{flag}")
    common.footer(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

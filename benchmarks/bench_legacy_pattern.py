"""The seed's claim, reproduced: a commit per output line (the legacy pattern) vs stepflow's recorder.

One workload for every arm: the generator's output (1,000,000 lines of 80 bytes, a marker every
10,000 lines), fed in 64 KiB chunks to stepflow's real `LineSplitter`, in this process. Arms:
  legacy   journal_mode=DELETE, synchronous=FULL, a row and a COMMIT per line (what the legacy
           StepFlow Monitor storage did); on a SAMPLE of the first lines, extrapolated
  seed-wal the seed's fix: the same row + COMMIT per line in WAL with synchronous=NORMAL; on a
           (larger) sample, extrapolated
  stepflow the real Recorder + Writer (background thread, batches) over a real SqliteStore,
           blocks of lines, on the whole workload
Rows (lines) per second of each, and the ratios. Fsync-bound arms depend on the disk: the store
folder's file system is printed.

    python benchmarks/bench_legacy_pattern.py [--runs 5] [--quick] [--legacy-sample 20000]
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import apsw
import common

CHUNK = 64 * 1024
REFERENCE = "issue 6: 1,900 vs ~1,000,000 rows/s (raw inserts); the seed claims 25-33x for WAL"


class NullView:
    """What a run shows, with nothing shown: the recorder's cost without a view's."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def handle(self, event: Any) -> None: ...
    def raw(self, stream: int, data: bytes) -> bool:
        return True

    def finish(self, state: Any) -> None: ...

    def problem(self, message: str) -> None:
        self.problems.append(message)


class RowPerLine:
    """A LineSink that stores the legacy way: one row and one transaction (autocommit) per line."""

    def __init__(self, conn: apsw.Connection, run_id: str) -> None:
        self.conn = conn
        self.run_id = run_id
        self.line = 0
        self.step: int | None = None
        self.steps = 0

    def lines(self, stream: int, data: bytes, count: int, cut: int) -> None:
        execute = self.conn.execute
        for text in data.split(b"\n") if count > 1 else (data,):
            execute("INSERT INTO log_lines (execution_id, step_index, stream, line_number, ts, content)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (self.run_id, self.step, stream, self.line, time.time(), text))
            self.line += 1

    def marker(self, stream: int, event: Any) -> None:
        self.step = self.steps
        self.steps += 1
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.conn.execute("INSERT INTO steps (id, execution_id, name, step_index, status, created_at)"
                          " VALUES (?, ?, ?, ?, 'running', ?)",
                          (f"{self.run_id}-{self.step}", self.run_id, getattr(event, "name", "?"), self.step, now))


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def row_per_line(db: Path, chunks: list[bytes], *, journal: str, synchronous: str) -> tuple[float, int]:
    """Seconds to record `chunks` a row and a commit per line; returns (seconds, rows in the table)."""
    from stepflow.config import load_settings
    from stepflow.run.lines import LineSplitter
    from stepflow.store import schema

    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    conn = apsw.Connection(str(db))
    mode = str(conn.execute(f"PRAGMA journal_mode={journal}").fetchall()[0][0])
    conn.execute(f"PRAGMA synchronous={synchronous}")
    schema.m001_legacy_tables(conn)  # the legacy tables, and a row-per-line table with its lookup index
    conn.execute("CREATE TABLE log_lines (id INTEGER PRIMARY KEY, execution_id TEXT NOT NULL, step_index INTEGER,"
                 " stream INTEGER NOT NULL, line_number INTEGER NOT NULL, ts REAL NOT NULL, content BLOB);"
                 " CREATE INDEX idx_log_lines ON log_lines (execution_id, line_number);")
    if mode.lower() != journal.lower():
        common.warn(f"journal_mode={journal} refused: SQLite kept {mode}")
    sink = RowPerLine(conn, "00000000-0000-4000-8000-000000000000")
    splitter = LineSplitter(sink, max_line=load_settings(storage=db.parent).max_line)
    start = time.perf_counter()
    for chunk in chunks:
        splitter.feed(1, chunk)
    splitter.close()
    seconds = time.perf_counter() - start
    rows = int(str(conn.execute("SELECT COUNT(*) FROM log_lines").fetchall()[0][0]))
    conn.close()
    return seconds, rows


def stepflow_recorder(template: Path, storage: Path, chunks: list[bytes]) -> tuple[float, int, list[str]]:
    """Seconds for stepflow's own path, wired as stepflow/run/execute.py wires it (no supervisor, no view)."""
    from stepflow.config import load_settings
    from stepflow.run.lines import LineSplitter
    from stepflow.run.recorder import Recorder, new_id
    from stepflow.run.supervisor import Outcome
    from stepflow.run.writer import StoreSink, Writer
    from stepflow.state import RunState
    from stepflow.store import open_store

    common.fresh_store(template, storage)
    settings = load_settings(storage=storage)
    view = NullView()
    start = time.perf_counter()
    state = RunState(id=new_id(), name="bench", command="gen_lines.py", started=time.time())
    writer = Writer(lambda: open_store(settings), buffer_size=settings.buffer_size, on_problem=view.problem)
    recorder = Recorder(state, [StoreSink(writer), view], artifacts_dir=settings.artifacts,
                        artifact_max_size=settings.artifact_max_size, cwd=str(storage))
    splitter = LineSplitter(recorder, max_line=settings.max_line)
    writer.start()
    recorder.start({"working_directory": str(storage), "tags": [], "metadata": {}})
    for chunk in chunks:
        splitter.feed(1, chunk)
    splitter.close()
    recorder.finish(Outcome(returncode=0, exit_status=0))
    losses = writer.close()
    seconds = time.perf_counter() - start
    if losses:
        view.problems.append(f"writer lost {losses.lines} lines, {losses.writes} writes: {losses.reason}")
    (lines,) = common.query(common.database(storage), "SELECT COALESCE(SUM(line_count), 0) FROM logs")[0]
    return seconds, int(lines), view.problems


def pragma_check(storage: Path) -> None:
    """Say which pragmas stepflow's connection really has: a pragma that does not apply is a silent cost."""
    from stepflow.config import load_settings
    from stepflow.store.connection import JOURNAL_SIZE_LIMIT, connect

    settings = load_settings(storage=storage)
    wanted = {"journal_mode": "wal", "synchronous": 1, "cache_size": settings.cache_size,
              "mmap_size": settings.mmap_size, "wal_autocheckpoint": settings.wal_autocheckpoint,
              "journal_size_limit": JOURNAL_SIZE_LIMIT, "temp_store": 2, "busy_timeout": settings.busy_timeout_ms}
    conn = connect(settings.database, settings)
    try:
        got = {name: conn.execute(f"PRAGMA {name}").fetchall()[0][0] for name in wanted}
    finally:
        conn.close()
    print("stepflow's connection (stepflow.store.connection.connect), pragma: in effect (asked for):")
    print("  " + ", ".join(f"{k}={got[k]}" + ("" if got[k] == v else f" (asked {v})") for k, v in wanted.items()))
    missed = [k for k, v in wanted.items() if got[k] != v]
    if missed:
        common.warn(f"pragmas not in effect on stepflow's connection: {', '.join(missed)}")
    print()


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, help="workload lines (default 1,000,000; --quick 100,000)")
    p.add_argument("--every", type=int, default=10_000, help="a marker every K lines (default 10,000)")
    p.add_argument("--legacy-sample", type=int, help="lines for the legacy arm (default 20,000; --quick 500)")
    p.add_argument("--wal-sample", type=int, help="lines for the seed-wal arm (default 100,000; --quick 5,000)")
    args = p.parse_args()
    total = args.lines or (100_000 if args.quick else 1_000_000)
    legacy_n = min(total, args.legacy_sample or (500 if args.quick else 20_000))
    wal_n = min(total, args.wal_sample or (5_000 if args.quick else 100_000))
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()

    with common.workdir("legacy") as work:
        common.header(f"legacy pattern: a commit per line vs stepflow's recorder, {total:,}-line workload",
                      args, cmd, how, where=work)
        gen = common.gen_argv(common.write_generator(work), total, args.every)
        data = subprocess.run(gen, capture_output=True, check=True).stdout
        samples = {"legacy": legacy_n, "seed-wal": wal_n, "stepflow": total}
        work_chunks = {name: chunks_of(data[: n * common.LINE_BYTES]) for name, n in samples.items()}
        expected = {name: n - common.markers_in(n, args.every) for name, n in samples.items()}
        template, storage = work / "template", work / "store"
        common.make_empty_store(template)
        counted: dict[str, list[int]] = {name: [] for name in samples}
        problems: list[str] = []

        def legacy(name: str, journal: str, synchronous: str) -> float:
            seconds, rows = row_per_line(work / f"{name}.db", work_chunks[name], journal=journal,
                                         synchronous=synchronous)
            counted[name].append(rows)
            return seconds

        def ours() -> float:
            seconds, lines, trouble = stepflow_recorder(template, storage, work_chunks["stepflow"])
            counted["stepflow"].append(lines)
            problems.extend(trouble)
            return seconds

        print(f"samples  : legacy arm {legacy_n:,} lines, seed-wal arm {wal_n:,} lines (rates extrapolated to"
              f" {total:,}); stepflow arm the whole {total:,}")
        print()
        ours()  # warm-up (imports, page cache); the COMMIT-per-line arms are too slow to warm up
        counted["stepflow"].clear()
        secs = common.interleaved({
            "legacy": lambda: legacy("legacy", "DELETE", "FULL"),
            "seed-wal": lambda: legacy("seed-wal", "WAL", "NORMAL"),
            "stepflow": ours,
        }, args.runs, warmup=0)
        pragma_check(storage)

    rate = {name: (samples[name] - common.markers_in(samples[name], args.every)) / common.median(v)
            for name, v in secs.items()}
    labels = {
        "legacy": "legacy: DELETE journal, synchronous=FULL, COMMIT per line",
        "seed-wal": "seed's fix: WAL, synchronous=NORMAL, COMMIT per line",
        "stepflow": "stepflow: Recorder + Writer, blocks, WAL",
    }
    rows = []
    for name, values in secs.items():
        rows.append([labels[name], f"{samples[name]:,}", common.median(values), common.spread(values), rate[name],
                     expected["stepflow"] / rate[name], rate[name] / rate["legacy"]])
    common.table(["arm", "lines fed", "s (median)", "min-max", "lines/s", f"s for {total:,}", "x legacy"], rows)
    print("  lines/s counts stored output lines (markers excluded); the two COMMIT-per-line arms are extrapolated.")
    print()
    common.table(["figure", "measured", "reference"], [
        ["stepflow / legacy", f"{rate['stepflow'] / rate['legacy']:,.0f}x", REFERENCE],
        ["seed-wal / legacy (the seed's claim)", f"{rate['seed-wal'] / rate['legacy']:.1f}x", "25-33x"],
        ["stepflow / seed-wal", f"{rate['stepflow'] / rate['seed-wal']:.0f}x", "-"],
    ])
    for name, stored in counted.items():
        bad = [v for v in stored if v != expected[name]]
        if bad:
            problems.append(f"{name}: {bad[0]:,} lines stored, expected {expected[name]:,}")
    for problem in problems:
        common.warn(problem)
    common.footer(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

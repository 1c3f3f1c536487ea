"""CPU time, not wall time, of this tree against another checkout: for a shared, loaded machine.

Wall-clock figures swing 2-5x when other jobs share the cores; the CPU a process spends moves
far less. This runs each measure in a fresh interpreter, alternating between the two trees, and
reports the best (least disturbed) CPU time of each:
  parser    1,000,000 log lines (a colon on each) through LineSplitter with a run's dialects
  run path  the same through the splitter, the recorder and the store sink (writes discarded)
  startup   `python -m stepflow run -o quiet -- true`, user+system CPU of the child

    git archive <commit> | tar -x -C /tmp/base
    python benchmarks/cpu_compare.py --against /tmp/base [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MEASURE = r"""
import sys, time
from pathlib import Path
kind = sys.argv[1]
line = b"2026-11-28T04:18:31.123 INFO worker-3: processed batch 1234 of 5678 ok=true dt=0.12\n"[:79] + b"\n"
data = b"".join(b"STEP_START:s%06d\n" % i if i % 10_000 == 0 else line for i in range(1_000_000))
chunks = [data[i : i + 256 * 1024] for i in range(0, len(data), 256 * 1024)]

class Null:
    class losses:
        lines = 0
    def put(self, item, urgent=False): pass
    def lines(self, stream, data, count, cut): pass
    def marker(self, stream, marker): pass

from stepflow.state import RunState
try:  # this tree: stepflow.run
    from stepflow.run.lines import LineSplitter
    from stepflow.run.options import dialects
    from stepflow.run.recorder import Recorder
    from stepflow.run.secrets import AddMaskCommand, Masker
    from stepflow.run.writer import StoreSink
    def make():
        state = RunState(id="r", name="n", command="c", started=0.0)
        sink = Null() if kind == "parser" else Recorder(state, [StoreSink(Null())], artifacts_dir=Path("/tmp"),
                                                        artifact_max_size=1, cwd="/tmp")
        splitter = LineSplitter(sink, max_line=1 << 20, dialects=[AddMaskCommand(), *dialects("start")])
        masker = Masker()
        return lambda c: splitter.feed(1, masker.filter(1, c)), splitter
except ImportError:  # before the regroup
    from stepflow.lines import LineSplitter
    from stepflow.recorder import Recorder
    from stepflow.secrets import Masker
    class NullView:
        def __getattr__(self, name): return lambda *a, **k: None
    def make():
        state = RunState(id="r", name="n", command="c", started=0.0)
        masker = Masker()
        sink = Null() if kind == "parser" else Recorder(state, Null(), NullView(), artifacts_dir=Path("/tmp"),
                                                        artifact_max_size=1, cwd="/tmp")
        splitter = LineSplitter(sink, max_line=1 << 20, masker=masker)
        def feed(c):
            masker.filter(1, c)
            splitter.feed(1, c)
        return feed, splitter
feed, splitter = make()
start = time.process_time()
for chunk in chunks:
    feed(chunk)
splitter.close()
print(time.process_time() - start)
"""


def in_process(tree: Path, kind: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", MEASURE, kind], env=env, capture_output=True, check=True)
    return float(out.stdout)


def startup(tree: Path, storage: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "STEPFLOW_STORAGE_PATH": storage}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "stepflow", "run", "-o", "quiet", "--", "true"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", type=Path, required=True, help="another checkout of stepflow (git archive)")
    p.add_argument("--runs", type=int, default=9)
    args = p.parse_args()
    trees = {"this": ROOT, "against": args.against.resolve()}
    best: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="stepflow-cpu-") as folder:
        for _ in range(args.runs):
            for name, tree in trees.items():
                for kind in ("parser", "run path"):
                    seconds = in_process(tree, kind.split()[0])
                    best[name, kind] = min(best.get((name, kind), 1e9), seconds)
                seconds = startup(tree, f"{folder}/{name}")
                best[name, "startup"] = min(best.get((name, "startup"), 1e9), seconds)
    print(f"best CPU of {args.runs} runs each, alternating; load avg {os.getloadavg()[0]:.1f}")
    for kind in ("parser", "run path", "startup"):
        row = []
        for name in trees:
            value = best[name, kind]
            row.append(f"{name} {value * 1000:7.1f} ms" + ("" if kind == "startup" else f" ({1 / value:.2f}M lines/s)"))
        print(f"{kind:9s} " + "   ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The marker parser's fast path: ordinary lines per second through LineSplitter, in-process.

Feeds 256 KiB chunks (what the runner reads) of 80-byte lines to stepflow.run.lines.LineSplitter
with a sink that keeps nothing, so the figure is the cost of finding lines and markers alone:
no pipe, no store. Three kinds of output: lines with no colon (the cheapest case), log lines
with timestamps (a colon on every line, so every chunk is searched), and the same with a
marker every 10,000 lines.

Usage: python benchmarks/bench_parser.py [--runs 5] [--quick]
"""

from __future__ import annotations

import sys
import time

import common

from stepflow.dialects.base import Marker
from stepflow.run.lines import LineSplitter
from stepflow.run.options import dialects
from stepflow.run.secrets import AddMaskCommand

CHUNK = 256 * 1024


class NullSink:
    """Counts what the splitter hands over; keeps nothing."""

    def __init__(self) -> None:
        self.line_count = 0
        self.marker_count = 0

    def lines(self, stream: int, data: bytes, count: int, cut: int) -> None:
        self.line_count += count

    def marker(self, stream: int, event: Marker) -> None:
        self.marker_count += 1


def stream(kind: str, total: int) -> list[bytes]:
    plain = b"L" * 79 + b"\n"
    logged = b"2026-11-28T04:18:31.123 INFO worker-3: processed batch 1234 of 5678 ok=true dt=0.12\n"[:79] + b"\n"
    line = plain if kind == "no colon" else logged
    lines = [b"STEP_START:step%06d".ljust(79) + b"\n" if kind == "markers" and i % 10_000 == 0 else line
             for i in range(total)]
    data = b"".join(lines)
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def measure(chunks: list[bytes]) -> tuple[float, int, int]:
    sink = NullSink()
    # the dialects a default run reads (stepflow.run.execute): ::add-mask:: lines, then stepflow's
    splitter = LineSplitter(sink, max_line=1024 * 1024, dialects=[AddMaskCommand(), *dialects("start")])
    start = time.perf_counter()
    for chunk in chunks:
        splitter.feed(1, chunk)
    splitter.close()
    return time.perf_counter() - start, sink.line_count, sink.marker_count


def main() -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    total = 100_000 if args.quick else 1_000_000
    started = time.perf_counter()
    common.header("marker parser fast path, in-process", args, [sys.executable, "-m", "stepflow"], "library")
    rows = []
    for kind in ("no colon", "log lines", "markers"):
        chunks = stream(kind, total)
        results = [measure(chunks) for _ in range(args.runs)]
        seconds = common.median([r[0] for r in results])
        _, lines, markers = results[0]
        rows.append((kind, f"{lines:,}", markers, seconds, lines / seconds, seconds / lines * 1e9))
    common.table(("output", "lines", "markers", "s (median)", "lines/s", "ns per line"), rows)
    print("  target: issue 2 asks for the fast path's figure; the whole run must persist >= 500,000 lines/s")
    common.footer(started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

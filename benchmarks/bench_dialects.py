"""The CI dialects' fast path: lines per second through each dialect's pre-filter and parser.

In-process, no pipe and no store: 256 KiB chunks of whole 80-byte lines go through the
needles' pre-filter (stepflow.dialects.prefilter.Prefilter), each candidate line is decoded
and handed to the dialect's parse, and every chunk's lines are counted as the splitter does.
The baseline is today's stepflow markers (stepflow.markers.candidate_spans + parse_line),
measured in the same run, round-robin with the other arms. "stepflow + X" is what
`--markers auto` reads under CI X: both needle sets in one pre-filter, both parsers.

Outputs: log lines with a timestamp (a colon on every line, no marker), lines with no colon,
and a mix: log lines with C++ `std::` lines every 50, diff headers (`--- a/..`) every 200 and
one marker of each dialect every 500 lines.

Usage: python benchmarks/bench_dialects.py [--runs 5] [--quick]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import common

from stepflow.dialects import load
from stepflow.dialects import stepflow as markers
from stepflow.dialects.base import Prefilter

LINES_PER_CHUNK = 3276  # 3276 * 80 bytes: just under 256 KiB, whole lines
STEPFLOW_NEEDLES = (b"step_", b"artifact:", b"meta:", b"::add-mask::")  # as stepflow.markers has them
DIALECTS = ("github", "gitlab", "buildkite", "teamcity")
TARGET = 4_000_000


def pad(text: bytes) -> bytes:
    return text[:79].ljust(79) + b"\n"


LOGGED = pad(b"2026-11-28T04:18:31.123 INFO worker-3: processed batch 1234 of 5678 ok=true dt=0.12")
PLAIN = b"L" * 79 + b"\n"
NOISE = {50: pad(b"  at std::vector<int>::push_back(int const&) in build/src/engine.cpp:412"),
         200: pad(b"--- a/src/stepflow/engine.py")}
MARKERS = [pad(b"::group::Build the app"), pad(b"::endgroup::"),
           pad(b"\x1b[0Ksection_start:1700000000:build\r\x1b[0KBuilding"), pad(b"\x1b[0Ksection_end:1700000042:build"),
           pad(b"--- :hammer: Building"), pad(b"+++ :test_tube: Testing"),
           pad(b"##teamcity[blockOpened name='Deploy']"), pad(b"##teamcity[blockClosed name='Deploy']"),
           pad(b"STEP_START:deploy"), pad(b"META:version:1.2.3")]


def output(kind: str, total: int) -> list[bytes]:
    lines = []
    for i in range(total):
        line = PLAIN if kind == "no colon" else LOGGED
        if kind == "mix":
            if i % 500 == 0:
                line = MARKERS[(i // 500) % len(MARKERS)]
            elif i % 200 == 0:
                line = NOISE[200]
            elif i % 50 == 0:
                line = NOISE[50]
        lines.append(line)
    return [b"".join(lines[i : i + LINES_PER_CHUNK]) for i in range(0, total, LINES_PER_CHUNK)]


def baseline_arm(chunks: list[bytes]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        count = 0
        for chunk in chunks:
            count += chunk.count(b"\n")
            for s, e in markers.candidate_spans(chunk):
                markers.parse_line(chunk[s:e].decode("utf-8", "replace"))
        return time.perf_counter() - start

    return run


def dialect_arm(chunks: list[bytes], names: tuple[str, ...]) -> Callable[[], float]:
    def run() -> float:
        parsers: list[Callable[[str], object]] = []
        needles: list[bytes] = []
        for name in names:
            if name == "stepflow":
                parsers.append(markers.parse_line)
                needles.extend(STEPFLOW_NEEDLES)
            else:
                dialect = load(name)()
                parsers.append(dialect.parse)
                needles.extend(dialect.needles)
        prefilter = Prefilter(needles)
        start = time.perf_counter()
        count = 0
        for chunk in chunks:
            count += chunk.count(b"\n")
            for s, e in prefilter.spans(chunk):
                line = chunk[s:e].decode("utf-8", "replace")
                for parse in parsers:
                    parse(line)
        return time.perf_counter() - start

    return run


def main() -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    total = 100_000 if args.quick else 1_000_000
    started = time.perf_counter()
    common.header("CI dialects' fast path, in-process", args, [sys.executable, "-m", "stepflow"], "library")
    for kind in ("log lines", "no colon", "mix"):
        chunks = output(kind, total)
        arms: dict[str, Callable[[], float]] = {"stepflow today (candidate_spans)": baseline_arm(chunks),
                                                "stepflow via Prefilter": dialect_arm(chunks, ("stepflow",))}
        for name in DIALECTS:
            arms[f"{name} alone"] = dialect_arm(chunks, (name,))
            arms[f"stepflow + {name} (auto under it)"] = dialect_arm(chunks, ("stepflow", name))
        results = common.interleaved(arms, args.runs)
        base = common.median(results["stepflow today (candidate_spans)"])
        rows = []
        for arm, seconds in results.items():
            median = common.median(seconds)
            spread = common.spread([total / s for s in seconds])
            rows.append((arm, total / median, median / total * 1e9, median / base, spread))
        print(f"-- {kind}: {total:,} lines of 80 bytes")
        common.table(("arm", "lines/s", "ns per line", "x today", "lines/s min-max"), rows)
        print()
    print(f"  target: issue 16 wants the fast path within 10% of today's ~{TARGET:,} lines/s in-process "
          "(compare 'stepflow + X' with 'stepflow today': x today <= 1.10)")
    common.footer(started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

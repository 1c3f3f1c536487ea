"""Memory: peak RSS of the stepflow process (not its child) is flat in the size of the output.

Runs `stepflow run --output quiet -- GEN` for 10,000 and 1,000,000 lines (a marker every
10,000), and `stepflow run -- true` as the floor, each under a tiny wrapper that measures the
stepflow process two ways:
  VmHWM   /proc/<pid>/status of stepflow itself, polled every 2 ms until it exits (its own
          high-water mark; a sample, so at worst a hair low)
  wait4   ru_maxrss from os.wait4 on stepflow (Linux: the largest of stepflow's own peak, the
          peaks of the children it reaped (the generator) and the image it was spawned from)
The first lines printed check those rules on this kernel; README.md explains them.

    python benchmarks/bench_memory.py [--runs 5] [--quick]
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import common

TARGET_RATIO = "<= 1.2x"  # issue 6: 1M lines within 1.2x of 10k lines
TARGET_ABS = "< 60 MB"

# The wrapper stays small (python -S, no imports beyond os/sys/time) because a spawned child's
# ru_maxrss starts from the high-water mark of the process that spawned it.
WRAPPER = r'''
import os, sys, time

def hwm(pid):
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None

def main():
    result, argv = sys.argv[1], sys.argv[2:]
    pid = os.posix_spawn(argv[0], argv, os.environ)
    peak, samples = 0, 0
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        value = hwm(pid)
        if value is not None:
            peak, samples = max(peak, value), samples + 1
        time.sleep(0.002)
    with open(result, "w") as f:
        f.write('{"vmhwm_kib": %d, "samples": %d, "maxrss_kib": %d, "exit": %d, "wrapper_hwm_kib": %d}' % (
            peak, samples, usage.ru_maxrss, os.waitstatus_to_exitcode(status), hwm("self") or 0))

main()
'''


def mb(kib: float) -> float:
    return kib / 1024


def own_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(wrapper: Path, work: Path, argv: list[str], env: dict[str, str]) -> dict[str, int]:
    """Run argv under the wrapper; its stdout goes to /dev/null, stderr to a file."""
    result = work / "result.json"
    result.unlink(missing_ok=True)
    with open(work / "stderr.txt", "wb") as err:
        subprocess.run([sys.executable, "-S", str(wrapper), str(result), *argv], env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, check=False)
    values: dict[str, int] = json.loads(result.read_text())
    return values


def check_method(wrapper: Path, work: Path, env: dict[str, str]) -> None:
    """Show, on this kernel, what ru_maxrss from wait4 includes, so the figures can be trusted."""
    py = sys.executable
    grow = "b = bytearray(150 << 20); b[::4096] = bytes(len(b[::4096]))"
    print("method check (Linux rusage rules, measured now):")
    direct = common.reaped(["true"])
    print(f"  `true` spawned by this benchmark process (own peak {mb(own_hwm()):.0f} MB): ru_maxrss"
          f" {mb(direct.maxrss_kib):.1f} MB -> a child's ru_maxrss starts at its spawner's high-water mark,"
          " hence the tiny wrapper")
    alone = measure(wrapper, work, ["/bin/true"] if Path("/bin/true").exists() else ["/usr/bin/true"], env)
    print(f"  `true` under the tiny wrapper: ru_maxrss {mb(alone['maxrss_kib']):.1f} MB"
          f" (wrapper's own peak {mb(alone['wrapper_hwm_kib']):.1f} MB): the floor of the wait4 figure")
    nested = measure(wrapper, work, [py, "-S", "-c", f"import subprocess, sys; subprocess.run([sys.executable,"
                                     f" '-S', '-c', {grow!r}])"], env)
    print(f"  a small Python that runs a 150 MB child: its VmHWM {mb(nested['vmhwm_kib']):.1f} MB, wait4"
          f" ru_maxrss {mb(nested['maxrss_kib']):.1f} MB -> wait4 includes reaped children's peaks;"
          " VmHWM does not")
    print()


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--small", type=int, default=10_000, help="lines of the small run (default 10,000)")
    p.add_argument("--large", type=int, help="lines of the large run (default 1,000,000; --quick 100,000)")
    p.add_argument("--every", type=int, default=10_000, help="a marker every K lines (default 10,000)")
    args = p.parse_args()
    large = args.large or (100_000 if args.quick else 1_000_000)
    cmd, how = common.stepflow_command(args.module)
    started = time.perf_counter()

    with common.workdir("memory") as work:
        wrapper = work / "rss_wrapper.py"
        wrapper.write_text(WRAPPER)
        gen_path = common.write_generator(work)
        template, storage = work / "template", work / "store"
        common.make_empty_store(template)
        env = common.bench_env(storage)
        common.header(f"memory: peak RSS of stepflow for {args.small:,} and {large:,} lines", args, cmd, how,
                      where=work)
        check_method(wrapper, work, env)
        true = "/bin/true" if Path("/bin/true").exists() else "/usr/bin/true"
        arms = {
            "stepflow run -- true": [*cmd, "run", "--output", "quiet", "--", true],
            f"GEN {args.small:,} lines alone": common.gen_argv(gen_path, args.small, args.every),
            f"GEN {large:,} lines alone": common.gen_argv(gen_path, large, args.every),
            f"stepflow run, {args.small:,} lines": [*cmd, "run", "--output", "quiet", "--",
                                                    *common.gen_argv(gen_path, args.small, args.every)],
            f"stepflow run, {large:,} lines": [*cmd, "run", "--output", "quiet", "--",
                                               *common.gen_argv(gen_path, large, args.every)],
        }
        got: dict[str, list[dict[str, int]]] = {name: [] for name in arms}

        def arm(name: str) -> float:
            common.fresh_store(template, storage)
            values = measure(wrapper, work, arms[name], env)
            if values["exit"] != 0:
                common.warn(f"{name} exited {values['exit']}: {(work / 'stderr.txt').read_text()[-300:]!r}")
            got[name].append(values)
            return float(values["vmhwm_kib"])

        common.interleaved({name: functools.partial(arm, name) for name in arms}, args.runs)

    rows = []
    for name, values in got.items():
        runs = values[-args.runs:]  # not the warm-up
        rows.append([name, mb(common.median([v["vmhwm_kib"] for v in runs])),
                     mb(common.median([v["maxrss_kib"] for v in runs])),
                     int(common.median([v["samples"] for v in runs]))])
    common.table(["process measured", "VmHWM MB (median)", "wait4 ru_maxrss MB", "VmHWM samples"], rows)
    print("  VmHWM: stepflow's own peak (polled). wait4: max(stepflow, its generator child, spawn image).")
    print()
    small_name, large_name = f"stepflow run, {args.small:,} lines", f"stepflow run, {large:,} lines"

    def peak(name: str, key: str) -> float:
        return mb(common.median([v[key] for v in got[name][-args.runs:]]))

    floor = "stepflow run -- true"
    rows = []
    for key in ("vmhwm_kib", "maxrss_kib"):
        rows.append([f"{peak(large_name, key) / peak(small_name, key):.2f}x", f"{peak(large_name, key):.1f} MB",
                     f"{peak(large_name, key) - peak(floor, key):.1f} MB"])
    common.table(["figure", "VmHWM", "wait4", "issue 6 target"], [
        [f"peak RSS, {large:,} / {args.small:,} lines", rows[0][0], rows[1][0], TARGET_RATIO],
        [f"peak RSS, {large:,} lines", rows[0][1], rows[1][1], TARGET_ABS],
        [f"peak RSS, {large:,} lines, over `run -- true`", rows[0][2], rows[1][2], "-"],
    ])
    print("  MB = MiB (1,048,576 bytes).")
    common.footer(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

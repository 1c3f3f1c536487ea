"""Resource use: the process tree sampled with psutil, per step and per run, stored and shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil

from stepflow.run.resources import Sampler, record_sample, settle, tree_usage
from stepflow.state import RunState, StepState
from tests.conftest import StepflowRunner, py, query, wait_for

MB = 1_000_000

# A parent that starts two children: one holds 80 MB, one burns 0.5 s of its own CPU time; both
# then wait for the test to close their stdin, so none can finish before it has been sampled.
TREE = """
import subprocess, sys
hold = subprocess.Popen([sys.executable, "-c", "b = bytearray(80_000_000); import sys; sys.stdin.read()"])
burn = subprocess.Popen([sys.executable, "-c",
                         "import sys, time\\nwhile time.process_time() < 0.5: pass\\nsys.stdin.read()"])
print("started", flush=True)
burn.wait(); hold.wait()
"""


def test_tree_usage_sums_the_command_and_its_descendants() -> None:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"started\n"
        root = psutil.Process(proc.pid)
        seen: list[tuple[float, int, int]] = []

        def big_enough() -> bool:
            usage = tree_usage(root)
            if usage is not None:
                seen.append(usage)
            return usage is not None and usage[1] >= 80 * MB and usage[0] >= 0.3
        assert wait_for(big_enough, timeout=60), seen[-3:]
        cpu, rss, count = seen[-1]
        assert count == 3
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the children read EOF and exit
        proc.wait(timeout=20)
    assert tree_usage(root) is None  # gone


def state_with_step() -> tuple[RunState, StepState]:
    state = RunState(id="r", name="n", command="c", started=0.0)
    step = StepState(index=0, id="s", name="a", started=0.0)
    state.add_step(step)
    state.current = step
    return state, step


def test_samples_go_to_the_running_step_and_the_run() -> None:
    state, first = state_with_step()
    record_sample(state, 1.0, 10 * MB, 2)
    record_sample(state, 0.8, 5 * MB, 1)  # a process missed once: CPU never goes back
    first.status, first.ended = "completed", 1.0
    second = StepState(index=1, id="t", name="b", started=1.0)
    state.add_step(second)
    state.current = second
    record_sample(state, 3.5, 30 * MB, 4)
    assert (first.cpu_seconds, first.peak_rss, first.max_processes) == (1.0, 10 * MB, 2)
    assert (second.cpu_seconds, second.peak_rss, second.max_processes) == (2.5, 30 * MB, 4)
    assert (state.cpu_seconds, state.peak_rss, state.max_processes) == (3.5, 30 * MB, 4)
    # wait4 saw more CPU than the last sample (the end fell between samples): to the last step
    settle(state, 4.0)
    assert state.cpu_seconds == 4.0 and second.cpu_seconds == 3.0 and state.peak_rss == 30 * MB
    settle(state, 2.0)  # less than sampled (a descendant never waited for): samples stand
    assert state.cpu_seconds == 4.0 and state.peak_rss == 30 * MB


def test_settle_alone_for_a_command_too_short_to_sample() -> None:
    state, step = state_with_step()
    settle(state, 0.02)
    # wait4's peak RSS would be stepflow's own (the child starts as its copy): none is claimed
    assert (state.cpu_seconds, state.peak_rss, state.max_processes) == (0.02, None, 1)
    assert step.cpu_seconds == 0.02


def test_sampler_thread_samples_a_real_command_and_stops() -> None:
    state, step = state_with_step()
    proc = subprocess.Popen([sys.executable, "-c", "b = bytearray(50_000_000); import time; time.sleep(2)"])
    sampler = Sampler(state, lambda: proc.pid, interval=0.1, first_delay=0.0)
    sampler.start()
    try:
        assert wait_for(lambda: (step.peak_rss or 0) >= 50 * MB, timeout=10)
    finally:
        sampler.stop()
        proc.kill()
        proc.wait()
    assert not sampler._thread.is_alive()
    assert state.max_processes == 1


def test_a_run_stores_resources_per_step_and_shows_them(stepflow: StepflowRunner, db_path: Path) -> None:
    code = (
        "import subprocess, sys, time\n"
        "print('STEP_START:idle', flush=True); time.sleep(0.6)\n"
        "print('STEP_START:work', flush=True)\n"
        "kid = subprocess.Popen([sys.executable, '-c', 'b = bytearray(60_000_000); import time; time.sleep(1.5)'])\n"
        "x = 0\n"
        "for i in range(6_000_000): x += i\n"  # a fixed amount of work (~0.6 s of CPU here), however loaded
        "kid.wait()\n"
    )
    result = stepflow("run", "--output", "plain", "--", *py(code))
    assert result.returncode == 0, result.stderr
    (cpu, rss, procs), = query(db_path, "SELECT cpu_seconds, peak_rss, max_processes FROM executions")
    idle, work = query(db_path, "SELECT cpu_seconds, peak_rss, max_processes FROM steps ORDER BY step_index")
    assert work[0] >= 0.3 and work[1] >= 60 * MB and work[2] >= 2  # type: ignore[operator]
    assert idle[0] is None or idle[0] < work[0]  # type: ignore[operator]
    assert cpu >= work[0] and rss >= work[1] and procs >= 2  # type: ignore[operator]

    shown = json.loads(stepflow("show", "last", "--json").stdout)
    assert shown["cpu_seconds"] == cpu and shown["peak_rss"] == rss and shown["max_processes"] == procs
    assert shown["steps"][1]["cpu_seconds"] == work[0] and shown["steps"][1]["max_processes"] == work[2]
    report = stepflow("show", "last").stdout.decode()
    assert "resources  cpu " in report and "peak RSS " in report and "processes at most" in report
    assert "CPU" in report and "PEAK RSS" in report


def test_a_command_too_short_to_sample_still_gets_wait4s_cpu(stepflow: StepflowRunner, db_path: Path) -> None:
    assert stepflow("run", "--", "true").returncode == 0
    (cpu, rss, procs), = query(db_path, "SELECT cpu_seconds, peak_rss, max_processes FROM executions")
    # CPU from wait4 alone; no peak RSS, since wait4's would be stepflow's own (runner._reap)
    assert cpu is not None and rss is None and procs == 1

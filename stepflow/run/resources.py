"""Resource use of the command's process tree: CPU time, peak RSS, process count, per step and run.

A daemon thread samples the tree (the command and its descendants, recursively) with psutil
every `interval` seconds and adds what it sees to the RunState: the CPU time used since the
previous sample goes to the step running at that moment, peaks are kept per step and per run.
psutil is imported on that thread, and only once the command has run for `first_delay` seconds,
so a short command never pays for it (psutil costs ~20-40 ms of CPU to import; with a
hundred parallel cron runs that adds up). When the command ends, `settle` folds in what
wait4 reported for it, which is exact for everything it reaped.

Short steps (under one interval) may see no sample: their figures stay None ("not measured").
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from stepflow.state import RunState

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any

INTERVAL = 0.5
FIRST_DELAY = 2.0  # a command shorter than this is measured by wait4 alone: no psutil import (was 0.5 s:
# under a hundred runs at once on 2 cores even short commands outlived it, and every run paid the import)


def tree_usage(root: Any) -> tuple[float, int, int] | None:
    """(CPU seconds, RSS bytes, process count) of a psutil.Process and its descendants.

    CPU counts each live process's own time plus the time of the children it has reaped, so
    the time of a descendant that exits moves to its parent instead of being lost or counted
    twice. None when the root is gone.
    """
    import psutil

    try:
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    cpu, rss, count = 0.0, 0, 0
    for proc in procs:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                memory = proc.memory_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        cpu += times.user + times.system + times.children_user + times.children_system
        rss += memory.rss
        count += 1
    return (cpu, rss, count) if count else None


def record_sample(state: RunState, cpu: float, rss: int, count: int) -> None:
    """Add one sample to the run and to the step running now. Pure apart from `state`."""
    previous = state.cpu_seconds or 0.0
    state.cpu_seconds = max(previous, cpu)  # monotone, even when a process is missed once
    delta = state.cpu_seconds - previous
    state.peak_rss = max(state.peak_rss or 0, rss)
    state.max_processes = max(state.max_processes or 0, count)
    step = state.current
    if step is not None and step.ended is None:
        step.cpu_seconds = (step.cpu_seconds or 0.0) + delta
        step.peak_rss = max(step.peak_rss or 0, rss)
        step.max_processes = max(step.max_processes or 0, count)


def settle(state: RunState, cpu_seconds: float | None) -> None:
    """Fold in wait4's figures for the ended command (call before the run's last step closes).

    CPU: wait4 counts the command and every descendant it waited for, exactly; samples may
    also have seen descendants that were never waited for. The larger is kept, and what the
    samples missed since the last one goes to the step still running. Peak RSS comes from
    the samples alone (see runner._reap).
    """
    if cpu_seconds is not None:
        extra = cpu_seconds - (state.cpu_seconds or 0.0)
        if extra > 0 or state.cpu_seconds is None:
            state.cpu_seconds = max(cpu_seconds, state.cpu_seconds or 0.0)
            step = state.current
            if step is not None and step.ended is None and extra > 0:
                step.cpu_seconds = (step.cpu_seconds or 0.0) + extra
        if state.max_processes is None:
            state.max_processes = 1


class Sampler:
    """Samples the process tree of the command whose pid `get_pid` returns, on its own thread.

    Never raises into the run: any failure ends sampling quietly.
    """

    def __init__(
        self,
        state: RunState,
        get_pid: Callable[[], int | None],
        *,
        interval: float = INTERVAL,
        first_delay: float = FIRST_DELAY,
    ) -> None:
        self.state = state
        self.get_pid = get_pid
        self.interval = interval
        self.first_delay = first_delay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stepflow-resources", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread (at most a second: one sample is quick)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        try:
            self._sample_until_stopped()
        except Exception:  # noqa: BLE001 - figures are a nicety; the run must go on without them
            return

    def _sample_until_stopped(self) -> None:
        if self._stop.wait(self.first_delay):
            return
        pid = self.get_pid()
        while pid is None:
            if self._stop.wait(0.05):
                return
            pid = self.get_pid()
        import psutil

        try:
            root = psutil.Process(pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            usage = tree_usage(root)
            if usage is None:
                return
            record_sample(self.state, *usage)
            self._stop.wait(self.interval)

"""Plain output for cron, pipes and CI: the command's bytes as they are, step events on stderr."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from stepflow import fmt
from stepflow.state import RunState, StepState

EVENT_TEXT = {
    "step_started": "started",
    "step_completed": "completed",
    "step_failed": "failed",
}


def write_all(fd: int, data: bytes) -> None:
    """os.write until all of `data` is out (a pipe may take less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class PlainView:
    """Passes stdout and stderr through byte for byte; adds one timestamped line per event on stderr."""

    def __init__(self, *, out_fd: int = 1, err_fd: int = 2, clock: Callable[[], float] = time.time):
        self.fds = {1: out_fd, 2: err_fd}
        self.clock = clock
        self.gone: set[int] = set()  # our streams whose reader went away (`... | head`)
        self._lock = threading.Lock()  # artifact warnings come from the writer's thread
        self._err_mid_line = False

    def start(self, state: RunState) -> None:
        self._say(f"run {state.id[:8]} started: {fmt.safe_text(state.command)}")

    def raw(self, stream: int, data: bytes) -> None:
        if stream in self.gone:
            return
        try:
            with self._lock:
                write_all(self.fds[stream], data)
        except (BrokenPipeError, OSError):
            self.gone.add(stream)  # the session closes the command's pipe too, as a shell pipeline would
            return
        if stream == 2:
            self._err_mid_line = not data.endswith(b"\n")

    def lines(self, stream: int, data: bytes, count: int) -> None:
        pass

    def event(self, kind: str, state: RunState, step: StepState | None, detail: str) -> None:
        if kind in EVENT_TEXT and step is not None:
            text = f"step {step.index + 1} {fmt.safe_text(step.name)!r} {EVENT_TEXT[kind]}"
            if step.duration is not None:
                text += f" in {fmt.duration(step.duration)}"
            if detail:
                text += f": {fmt.safe_text(detail)}"
        elif kind == "artifact":
            text = f"artifact {fmt.safe_text(detail)}"
        elif kind in ("warning", "run_error"):
            text = f"{'warning' if kind == 'warning' else 'error'}: {fmt.safe_text(detail)}"
        else:
            return
        self._say(text)

    def problem(self, message: str) -> None:
        self._say(f"warning: {message}")

    def finish(self, state: RunState) -> None:
        done = f"{state.completed_steps}/{state.step_count} steps"
        took = fmt.duration((state.ended or self.clock()) - state.started)
        self._say(f"run {state.id[:8]} {state.status} (exit {state.exit_code}, {done}, {took})")

    def _say(self, text: str) -> None:
        if 2 in self.gone:
            return
        with self._lock:
            prefix = "\n" if self._err_mid_line else ""
            self._err_mid_line = False
            line = f"{prefix}[{fmt.clock_time(self.clock())}] stepflow: {text}\n"
            try:
                write_all(self.fds[2], line.encode("utf-8", "replace"))
            except OSError:
                self.gone.add(2)

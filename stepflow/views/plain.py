"""Plain output for cron, pipes and CI: the command's bytes as they are, step events on stderr."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from stepflow import events as ev
from stepflow import fmt
from stepflow.state import RunState, StepState


def write_all(fd: int, data: bytes) -> None:
    """os.write until all of `data` is out (a pipe may take less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class PlainView:
    """Passes stdout and stderr through byte for byte; adds one timestamped line per event on stderr."""

    passes_output = True  # execute hands the output over cut at marker lines, to keep the order

    def __init__(self, *, out_fd: int = 1, err_fd: int = 2, clock: Callable[[], float] = time.time):
        self.fds = {1: out_fd, 2: err_fd}
        self.clock = clock
        self.gone: set[int] = set()  # our streams whose reader went away (`... | head`)
        self._lock = threading.Lock()  # artifact warnings come from the writer's thread
        self._err_mid_line = False

    def raw(self, stream: int, data: bytes) -> bool:
        if stream in self.gone:
            return False
        try:
            with self._lock:
                write_all(self.fds[stream], data)
        except (BrokenPipeError, OSError):
            self.gone.add(stream)  # execute closes the command's pipe too, as a shell pipeline would
            return False
        if stream == 2:
            self._err_mid_line = not data.endswith(b"\n")
        return True

    def handle(self, event: ev.Event) -> None:
        match event:
            case ev.LinesRead():
                return
            case ev.RunStarted(state):
                text = f"run {state.id[:8]} started: {fmt.safe_text(state.command)}"
            case ev.StepStarted(_, step):
                text = _step_text(step, "started", None)
            case ev.StepEnded(_, step, status, error):
                text = _step_text(step, status, error)
            case ev.ArtifactAdded(path=path):
                text = f"artifact {fmt.safe_text(path)}"
            case ev.WarningRaised(message=message):
                text = f"warning: {fmt.safe_text(message)}"
            case ev.RunErrorRaised(_, message):
                text = f"error: {fmt.safe_text(message)}"
            case _:
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


def _step_text(step: StepState, status: str, error: str | None) -> str:
    text = f"step {step.index + 1} {fmt.safe_text(step.name)!r} {status}"
    if step.duration is not None:
        text += f" in {fmt.duration(step.duration)}"
    if error:
        text += f": {fmt.safe_text(error)}"
    return text

"""Quiet output, as chronic(1) does for cron: nothing unless the run fails."""

from __future__ import annotations

from collections import deque

from stepflow.state import RunState, StepState
from stepflow.views.plain import PlainView

KEEP_BYTES = 1024 * 1024  # of the output of the step that fails, at most
REPLAYED = ("step_failed", "warning", "run_error")


class QuietView:
    """Keeps the current step's output (bounded); on failure prints it and a summary via plain."""

    def __init__(self, plain: PlainView | None = None) -> None:
        self.plain = plain or PlainView()
        self._current: deque[tuple[int, bytes]] = deque()
        self._size = 0
        self._failed: list[tuple[int, bytes]] | None = None
        self._events: list[tuple[str, StepState | None, str]] = []

    def start(self, state: RunState) -> None:
        pass

    def raw(self, stream: int, data: bytes) -> None:
        pass

    def lines(self, stream: int, data: bytes, count: int) -> None:
        self._current.append((stream, data))
        self._size += len(data) + 1
        while self._size > KEEP_BYTES and len(self._current) > 1:
            self._size -= len(self._current.popleft()[1]) + 1

    def event(self, kind: str, state: RunState, step: StepState | None, detail: str) -> None:
        if kind == "step_started":
            self._current.clear()
            self._size = 0
        elif kind == "step_failed" and self._failed is None:
            self._failed = list(self._current)
        if kind in REPLAYED:
            self._events.append((kind, step, detail))

    def problem(self, message: str) -> None:
        self.plain.problem(message)  # stepflow's own trouble is never silent

    def finish(self, state: RunState) -> None:
        if state.status == "completed":
            return
        for stream, data in self._failed if self._failed is not None else self._current:
            self.plain.raw(stream, data + b"\n")
        for kind, step, detail in self._events:
            self.plain.event(kind, state, step, detail)
        self.plain.finish(state)

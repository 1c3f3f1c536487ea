"""Quiet output, as chronic(1) does for cron: nothing unless the run fails."""

from __future__ import annotations

from collections import deque

from stepflow import events as ev
from stepflow.state import RunState
from stepflow.views.plain import PlainView

KEEP_BYTES = 1024 * 1024  # of the output of the step that fails, at most


class QuietView:
    """Keeps the current step's output (bounded); on failure prints it and a summary via plain."""

    def __init__(self, plain: PlainView | None = None) -> None:
        self.plain = plain or PlainView()
        self._current: deque[tuple[int, bytes]] = deque()
        self._size = 0
        self._failed: list[tuple[int, bytes]] | None = None
        self._events: list[ev.Event] = []  # what the summary repeats: failed steps, warnings, errors

    def raw(self, stream: int, data: bytes) -> bool:
        return True

    def handle(self, event: ev.Event) -> None:
        match event:
            case ev.LinesRead(stream=stream, data=data):
                self._current.append((stream, data))
                self._size += len(data) + 1
                while self._size > KEEP_BYTES and len(self._current) > 1:
                    self._size -= len(self._current.popleft()[1]) + 1
            case ev.StepStarted():
                self._current.clear()
                self._size = 0
            case ev.StepEnded(status="failed"):
                if self._failed is None:
                    self._failed = list(self._current)
                self._events.append(event)
            case ev.WarningRaised() | ev.RunErrorRaised():
                self._events.append(event)

    def problem(self, message: str) -> None:
        self.plain.problem(message)  # stepflow's own trouble is never silent

    def finish(self, state: RunState) -> None:
        if state.status == "completed":
            return
        for stream, data in self._failed if self._failed is not None else self._current:
            self.plain.raw(stream, data + b"\n")
        for event in self._events:
            self.plain.handle(event)
        self.plain.finish(state)

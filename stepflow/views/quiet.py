"""Quiet output, as chronic(1) does for cron: nothing unless the run fails."""

from __future__ import annotations

from collections import deque

from stepflow import events as ev
from stepflow.state import RunState
from stepflow.views.plain import PlainView

KEEP_BYTES = 1024 * 1024  # of the output of the step that fails, at most


class QuietView:
    """Keeps the current step's output (bounded); once a step fails, that step's output and
    everything after it, stdout and stderr in the order read (each bounded); on failure prints
    them and a summary via plain, as chronic prints all a failed job said."""

    def __init__(self, plain: PlainView | None = None) -> None:
        self.plain = plain or PlainView()
        self._current: deque[tuple[int, bytes]] = deque()
        self._size = 0
        self._failed: list[tuple[int, bytes]] | None = None
        self._after: deque[tuple[int, bytes]] = deque()  # everything read after the first failure
        self._after_size = 0
        self._events: list[ev.Event] = []  # what the summary repeats: failed steps, warnings, errors

    def raw(self, stream: int, data: bytes) -> bool:
        return True

    def handle(self, event: ev.Event) -> None:
        match event:
            case ev.LinesRead(stream=stream, data=data):
                if self._failed is not None:
                    self._after_size = _keep(self._after, self._after_size, stream, data)
                else:
                    self._size = _keep(self._current, self._size, stream, data)
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
        shown = self._current if self._failed is None else [*self._failed, *self._after]
        for stream, data in shown:
            self.plain.raw(stream, data + b"\n")
        for event in self._events:
            self.plain.handle(event)
        self.plain.finish(state)


def _keep(lines: deque[tuple[int, bytes]], size: int, stream: int, data: bytes) -> int:
    """Append a block of lines; drop the oldest past KEEP_BYTES (the newest block stays)."""
    lines.append((stream, data))
    size += len(data) + 1
    while size > KEEP_BYTES and len(lines) > 1:
        size -= len(lines.popleft()[1]) + 1
    return size

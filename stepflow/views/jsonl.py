"""JSON output: one object per event, one per line, on stdout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from stepflow import events as ev
from stepflow.fmt import iso
from stepflow.state import RunState, StepState
from stepflow.store.models import STREAM_NAMES
from stepflow.views.plain import write_all


class JsonView:
    """Events as JSON Lines; output lines are events too (`"event": "line"`)."""

    def __init__(self, *, fd: int = 1, clock: Callable[[], float] = time.time) -> None:
        self.fd = fd
        self.clock = clock

    def _emit(self, event: str, **fields: object) -> None:
        record = {"event": event, "time": iso(self.clock()), **fields}
        try:
            write_all(self.fd, (json.dumps(record, ensure_ascii=False) + "\n").encode())
        except OSError:
            pass

    def raw(self, stream: int, data: bytes) -> bool:
        return True

    def handle(self, event: ev.Event) -> None:
        """Each event under its public name (pinned by tests/test_json_output.py)."""
        match event:
            case ev.LinesRead(stream=stream, data=data, count=count):
                name = STREAM_NAMES[stream]
                for line in data.split(b"\n") if count > 1 else (data,):
                    self._emit("line", stream=name, text=line.decode("utf-8", "replace"))
            case ev.RunStarted(state):
                self._emit("run_started", id=state.id, name=state.name, command=state.command)
            case ev.StepStarted(_, step):
                self._step("step_started", step, "message", None)
            case ev.StepEnded(_, step, status, error):
                self._step(f"step_{status}", step, "message", error)
            case ev.ArtifactAdded(_, step, _art, path):
                self._step("artifact", step, "path", path)
            case ev.WarningRaised(_, step, message):
                self._step("warning", step, "message", message)
            case ev.RunErrorRaised(_, message):
                self._step("run_error", None, "message", message)
            case ev.MetaSet(_, step, key, value):
                self._step("meta", step, "message", f"{key}={value}")

    def _step(self, kind: str, step: StepState | None, key: str, detail: str | None) -> None:
        fields: dict[str, object] = {}
        if step is not None:
            fields.update(step=step.name, index=step.index, status=step.status)
            if step.duration is not None:
                fields["duration_s"] = round(step.duration, 6)
        if detail:
            fields[key] = detail
        self._emit(kind, **fields)

    def problem(self, message: str) -> None:
        self._emit("problem", message=message)

    def finish(self, state: RunState) -> None:
        self._emit(
            "run_finished", id=state.id, status=state.status, exit_code=state.exit_code,
            duration_s=round((state.ended or self.clock()) - state.started, 6),
            total_steps=state.step_count, completed_steps=state.completed_steps,
            warnings=state.warnings,
        )

"""Turn lines and markers into the run's state and its writes (executions, steps, logs, artifacts)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from stepflow.dialects import stepflow as markers
from stepflow.fmt import iso
from stepflow.run.artifacts import CopyQueue, copy_artifact
from stepflow.run.supervisor import Outcome
from stepflow.run.writer import Writer
from stepflow.state import ArtifactState, RunState, StepState
from stepflow.store.models import Insert, LogBlock, Update, Write


class View(Protocol):
    """What a run shows while it happens (plain, quiet, json, live)."""

    def start(self, state: RunState) -> None: ...
    def raw(self, stream: int, data: bytes) -> None: ...
    def lines(self, stream: int, data: bytes, count: int) -> None: ...
    def event(self, kind: str, state: RunState, step: StepState | None, detail: str) -> None: ...
    def problem(self, message: str) -> None: ...
    def finish(self, state: RunState) -> None: ...


def new_id() -> str:
    """A random (version 4) UUID in its usual text form, as the legacy tool's ids are.

    Written out here because `import uuid` costs ~3 ms of start-up (it imports platform).
    """
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Recorder:
    """Receives lines and markers (a LineSink) and keeps state, store and view in step."""

    def __init__(
        self,
        state: RunState,
        writer: Writer,
        view: View,
        *,
        artifacts_dir: Path,
        artifact_max_size: int,
        cwd: str,
        on_critical_failure: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.writer = writer
        self.view = view
        self.artifacts_dir = artifacts_dir
        self.artifact_max_size = artifact_max_size
        self.cwd = cwd
        self.on_critical_failure = on_critical_failure
        self.clock = clock
        self.copies = CopyQueue()

    # -- the run ---------------------------------------------------------------------------

    def start(self, row: dict[str, Any]) -> None:
        """Insert the run's row (status running) and tell the view."""
        s = self.state
        self.writer.put(Insert("executions", {
            "id": s.id, "name": s.name, "command": s.command, "status": "running",
            "created_at": iso(s.started), "created_ts": s.started, "started_at": iso(s.started),
            "total_steps": 0, "completed_steps": 0, "current_step_index": -1, **row,
        }), urgent=True)
        self.view.start(s)

    def finish(self, outcome: Outcome) -> None:
        """Close the running step and the run from how the command ended (the view is told
        by the session once the writer is done, so its summary counts copied artifacts)."""
        self.copies.drain()  # the artifacts announced are in the store before the run ends
        s = self.state
        now = self.clock()
        failed = outcome.exit_status != 0
        if s.current is not None:
            reason = None if not failed else _ending(outcome)
            self._end_step(s.current, "failed" if failed else "completed", reason, now)
        if outcome.timed_out:
            s.status = "timed_out"
        elif outcome.interrupted is not None or outcome.returncode == -2:
            s.status = "cancelled"
        elif failed or s.status == "failed":
            s.status = "failed"
        else:
            s.status = "completed"
        s.ended, s.exit_code = now, outcome.exit_status
        error = s.errors[0] if s.errors else None
        if s.status != "completed" and error is None:
            error = _ending(outcome)
        self.writer.put(Update("executions", s.id, {
            "status": s.status, "exit_code": outcome.exit_status, "completed_at": iso(now),
            "error_message": "; ".join(s.errors) if s.errors else error,
            # sampled by stepflow.run.resources and settled with wait4's figures; wait4's alone if unsampled
            "cpu_seconds": s.cpu_seconds if s.cpu_seconds is not None else outcome.cpu_seconds,
            "peak_rss": s.peak_rss,
            "max_processes": s.max_processes,
            "line_count": s.lines, "completed_steps": s.completed_steps,
            "lost_lines": self.writer.losses.lines,  # dropped so far; later losses cannot be stored
        }), urgent=True)

    # -- LineSink --------------------------------------------------------------------------

    def lines(self, stream: int, data: bytes, count: int, cut: int) -> None:
        s = self.state
        step = s.current
        self.writer.put(LogBlock(
            s.id, None if step is None else step.index, stream, s.lines, count, self.clock(), data, cut
        ))
        s.lines += count
        if step is not None:
            step.lines += count
        self.view.lines(stream, data, count)

    def marker(self, stream: int, event: markers.Event) -> None:
        match event:
            case markers.StepStart(name, params):
                self._start_step(name, params)
            case markers.StepComplete(name):
                self._complete(name)
            case markers.StepError(message):
                self._error(message)
            case markers.Artifact(path, description):
                self._artifact(path, description)
            case markers.Meta(key, value):
                self._meta(key, value)
            case markers.AddMask():
                pass  # the line splitter has learnt the value; the line itself is not kept
            case markers.BadMarker(keyword, reason):
                self.warn(f"{keyword} ignored: {reason}")

    # -- steps -----------------------------------------------------------------------------

    def _start_step(self, name: str, params: dict[str, Any]) -> None:
        s = self.state
        now = self.clock()
        if s.current is not None:
            self._end_step(s.current, "completed", None, now)
        params = dict(params)
        stop = params.pop("stop_on_error", False)
        expected = params.pop("duration", None)
        description = params.pop("description", None)
        step = StepState(
            index=s.step_count, id=new_id(), name=name, started=now, stop_on_error=stop is True,
            expected=float(expected) if isinstance(expected, int | float) and expected >= 0 else None,
            description=None if description is None else str(description), metadata=params,
        )
        s.add_step(step)
        s.current = step
        self.writer.put(Insert("steps", {
            "id": step.id, "execution_id": s.id, "name": name, "description": step.description,
            "step_index": step.index, "status": "running", "created_at": iso(now),
            "started_at": iso(now), "estimated_duration": step.expected,
            "stop_on_error": step.stop_on_error, "metadata": step.metadata,
        }))
        self.writer.put(Update("executions", s.id, {
            "total_steps": s.step_count, "current_step_index": step.index,
        }), urgent=True)
        self.view.event("step_started", s, step, "")

    def _end_step(self, step: StepState, status: str, error: str | None, now: float) -> None:
        s = self.state
        step.status, step.ended, step.error = status, now, error
        s.current = None
        s.completed_steps += status == "completed"
        self.writer.put(Update("steps", step.id, {
            "status": status, "completed_at": iso(now), "error_message": error,
            "exit_code": 0 if status == "completed" else 1,
            "cpu_seconds": step.cpu_seconds, "peak_rss": step.peak_rss, "max_processes": step.max_processes,
        }))
        self.writer.put(Update("executions", s.id, {"completed_steps": s.completed_steps}), urgent=True)
        self.view.event(f"step_{status}", s, step, error or "")

    def _complete(self, name: str) -> None:
        current = self.state.current
        if current is None:
            self.warn(f"STEP_COMPLETE:{name} ignored: no step is running")
        elif current.name != name:
            self.warn(f"STEP_COMPLETE:{name} ignored: the running step is {current.name!r}")
        else:
            self._end_step(current, "completed", None, self.clock())

    def _error(self, message: str) -> None:
        s = self.state
        step = s.current
        if step is None:
            s.errors.append(message or "STEP_ERROR with no step running")
            self.writer.put(Update("executions", s.id, {"error_message": "; ".join(s.errors)}))
            self.view.event("run_error", s, None, message)
            return
        self._end_step(step, "failed", message or "step failed", self.clock())
        if step.stop_on_error:
            s.status = "failed"
            s.errors.insert(0, f"critical step {step.name!r} failed: {message or 'step failed'}")
            self.on_critical_failure()

    def _meta(self, key: str, value: str) -> None:
        s = self.state
        step = s.current
        upper = key.upper()
        if step is not None and upper == "ESTIMATED_DURATION":
            try:
                step.expected = max(float(value), 0.0)
            except ValueError:
                self.warn(f"META:ESTIMATED_DURATION ignored: {value!r} is not a number of seconds")
                return
            self.writer.put(Update("steps", step.id, {"estimated_duration": step.expected}))
        elif step is not None and upper == "DESCRIPTION":
            step.description = value
            self.writer.put(Update("steps", step.id, {"description": value}))
        elif step is not None:
            step.metadata[key] = value
            self.writer.put(Update("steps", step.id, {"metadata": dict(step.metadata)}))
        else:
            s.metadata[key] = value
            self.writer.put(Update("executions", s.id, {"metadata": dict(s.metadata)}))
        self.view.event("meta", s, step, f"{key}={value}")

    # -- artifacts and warnings ------------------------------------------------------------

    def _artifact(self, path: str, description: str | None) -> None:
        s = self.state
        step = s.current
        source = Path(self.cwd, os.path.expanduser(path))
        art = ArtifactState(str(source), description, None if step is None else step.index)
        s.artifacts.append(art)
        artifact_id = new_id()
        created = iso(self.clock())
        step_id = None if step is None else step.id

        def copy() -> None:
            done = copy_artifact(source, self.artifacts_dir / s.id, artifact_id,
                                 max_size=self.artifact_max_size)
            art.stored, art.size, art.sha256 = done.stored, done.size, done.sha256
            writes: list[Write] = [Insert("artifacts", {
                "id": artifact_id, "execution_id": s.id, "step_id": step_id,
                "name": source.name, "description": description,
                "file_path": done.stored or str(source), "file_name": source.name,
                "file_size": done.size, "mime_type": done.mime_type, "artifact_type": done.kind,
                "created_at": created, "tags": [], "metadata": {}, "sha256": done.sha256,
                "source_path": path,
            })]
            if done.problem:
                writes += self._warning_writes(f"artifact {path} not copied: {done.problem}")
            for w in writes:
                self.writer.put(w, urgent=True)

        self.copies.submit(copy)
        self.view.event("artifact", s, step, path)

    def warn(self, message: str) -> None:
        for w in self._warning_writes(message):
            self.writer.put(w)

    def _warning_writes(self, message: str) -> list[Write]:
        s = self.state
        if not s.warn(message):
            return []
        self.view.event("warning", s, s.current, message)
        return [Update("executions", s.id, {"warnings": list(s.warnings)})]


def _ending(outcome: Outcome) -> str:
    if outcome.timed_out:
        return "timed out"
    if outcome.interrupted is not None:
        return f"interrupted (signal {outcome.interrupted})"
    if outcome.stopped:
        return "stopped after a critical step failed"
    if outcome.returncode < 0:
        return f"killed by signal {-outcome.returncode}"
    return f"command exited with status {outcome.returncode}"

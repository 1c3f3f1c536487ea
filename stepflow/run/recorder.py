"""Turn lines and markers into the run's state, and tell every sink what happened.

The recorder is the one place that knows what a marker means (stepflow.dialects.base is the
vocabulary); it updates the model (stepflow.state) and emits typed events (stepflow.events)
to a list of sinks. It builds no store writes (the writer sink does) and draws nothing (the
views do): a hook or an exporter is one more sink, not an edit here.

Steps nest: `open_steps` is a stack whose top is `current`, where lines and markers go.
- a flat StepStart ends every open step first (innermost first); a nested one opens inside
  the innermost;
- StepEnd without a name ends the innermost step; StepEnd(name) ends that step and every
  step opened inside it; StepComplete(name) ends the innermost step if it has that name;
- StepError(ends=True) ends the innermost step failed; StepError(ends=False) marks it failed
  and it ends failed whenever it ends;
- Notice: warning and notice levels are kept on the run as warnings ("notice: ..." for the
  latter); debug and progress only pass to the sinks (NoticeRaised);
- TestResult: appended to the innermost step's metadata["tests"] (the run's without a step).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from stepflow.dialects import base as m
from stepflow.events import (
    ArtifactAdded,
    ArtifactCopied,
    Event,
    LinesRead,
    MetaSet,
    NoticeRaised,
    RunErrorRaised,
    RunFinished,
    RunStarted,
    Sink,
    StepEnded,
    StepStarted,
    TestRecorded,
    WarningRaised,
)
from stepflow.run.artifacts import Budget, CopyQueue, copy_artifact
from stepflow.run.supervisor import Outcome
from stepflow.state import ArtifactState, RunState, StepState

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from pathlib import Path  # pathlib only once an artifact or a spool needs it (start-up, issue 17)
    from typing import Any

KEPT_NOTICES = ("warning", "notice")  # levels kept on the run as warnings
# Killed by SIGINT, or exited 128+SIGINT as a script that traps INT does (`trap '...; exit 130'
# INT`): Ctrl-C at a terminal reaches the command's group, not stepflow, so this is how it shows.
INTERRUPTED = (-2, 130)


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
    """Receives lines and markers (a LineSink) and keeps the state and every sink in step."""

    def __init__(
        self,
        state: RunState,
        sinks: Sequence[Sink],
        *,
        artifacts_dir: str | Path,
        artifact_max_size: int,
        cwd: str,
        on_critical_failure: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        budget: Budget | None = None,
    ) -> None:
        self.budget = budget
        self.state = state
        self.sinks = tuple(sinks)
        self.artifacts_dir = artifacts_dir
        self.artifact_max_size = artifact_max_size
        self.cwd = cwd
        self.on_critical_failure = on_critical_failure
        self.clock = clock
        self.copies = CopyQueue()
        self.finished = False

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.handle(event)

    # -- the run ---------------------------------------------------------------------------

    def start(self, facts: dict[str, Any]) -> None:
        """The run began: `facts` are stored with it (see events.RunStarted)."""
        self.emit(RunStarted(self.state, facts))

    def finish(self, outcome: Outcome) -> None:
        """End the open steps and the run from how the command ended (the views' summaries
        come later, from execute, once the writer is done and copied artifacts are counted)."""
        if self.finished:
            return
        self.finished = True
        self.copies.drain()  # the artifacts announced are in the store before the run ends
        s = self.state
        now = self.clock()
        failed = outcome.exit_status != 0
        reason = _ending(outcome) if failed else None
        while s.open_steps:
            self._end_step(s.open_steps[-1], "failed" if failed else "completed", reason, now)
        if outcome.timed_out:
            s.status = "timed_out"
        elif outcome.interrupted is not None or outcome.returncode in INTERRUPTED:
            s.status = "cancelled"
        elif failed or s.status == "failed":
            s.status = "failed"
        else:
            s.status = "completed"
        s.ended, s.exit_code = now, outcome.exit_status
        error = "; ".join(s.errors) if s.errors else None
        if s.status != "completed" and error is None:
            error = _ending(outcome)
        cpu = s.cpu_seconds if s.cpu_seconds is not None else outcome.cpu_seconds
        self.emit(RunFinished(s, outcome.exit_status, error, cpu))

    def end_attempt(self, reason: str) -> list[str]:
        """An attempt of a retried run ended failed and another follows (stepflow.run.attempts):
        its open steps end failed with `reason`, the run goes on; returns the attempt's errors,
        which are the attempt's, not the run's, and are cleared."""
        s = self.state
        now = self.clock()
        while s.open_steps:
            self._end_step(s.open_steps[-1], "failed", reason, now)
        if s.status == "failed":  # a stop_on_error step failed in this attempt
            s.status = "running"
        errors, s.errors[:] = list(s.errors), []
        return errors

    # -- LineSink --------------------------------------------------------------------------

    def lines(self, stream: int, data: bytes, count: int, cut: int) -> None:
        s = self.state
        step = s.current
        first = s.lines
        s.lines += count
        if step is not None:
            step.lines += count
        self.emit(LinesRead(s, step, stream, data, count, cut, first, self.clock()))

    def marker(self, stream: int, marker: m.Marker) -> None:
        match marker:
            case m.StepStart(name, params, nested, at):
                self._start_step(name, params, nested, self._at(at))
            case m.StepComplete(name):
                self._complete(name)
            case m.StepEnd(name, at):
                self._end_named(name, self._at(at))
            case m.StepError(message, ends, metadata):
                self._error(message, ends, metadata)
            case m.Artifact(path, description):
                self._artifact(path, description)
            case m.Meta(key, value):
                self._meta(key, value)
            case m.AddMask():
                pass  # stepflow.run.secrets has learnt the value; the line itself is not kept
            case m.Notice(level, message, metadata):
                self._notice(level, message, metadata)
            case m.TestResult():
                self._test(marker)
            case m.BadMarker(keyword, reason):
                self.warn(f"{keyword} ignored: {reason}")

    def _at(self, at: float | None) -> float:
        return self.clock() if at is None else at

    # -- steps -----------------------------------------------------------------------------

    def _start_step(self, name: str, params: dict[str, Any], nested: bool, now: float) -> None:
        s = self.state
        if not nested:
            while s.open_steps:
                self._end_step(s.open_steps[-1], "completed", None, now)
        params = dict(params)
        stop = params.pop("stop_on_error", False)
        expected = params.pop("duration", None)
        description = params.pop("description", None)
        step = StepState(
            index=s.step_count, id=new_id(), name=name, started=now, stop_on_error=stop is True,
            expected=float(expected) if isinstance(expected, int | float) and expected >= 0 else None,
            description=None if description is None else str(description), metadata=params,
            parent=s.current,
        )
        s.add_step(step)
        s.open_steps.append(step)
        s.current = step
        self.emit(StepStarted(s, step))

    def _end_step(self, step: StepState, status: str, error: str | None, now: float) -> None:
        """End `step` (the innermost open one); a step marked failed ends failed whatever `status`."""
        s = self.state
        if step.failure is not None:
            status, error = "failed", step.failure
        step.status, step.ended, step.error = status, now, error
        s.open_steps.pop()
        s.current = s.open_steps[-1] if s.open_steps else None
        s.completed_steps += status == "completed"
        self.emit(StepEnded(s, step, status, error))

    def _complete(self, name: str) -> None:
        current = self.state.current
        if current is None:
            self.warn(f"STEP_COMPLETE:{name} ignored: no step is running")
        elif current.name != name:
            self.warn(f"STEP_COMPLETE:{name} ignored: the running step is {current.name!r}")
        else:
            self._end_step(current, "completed", None, self.clock())

    def _end_named(self, name: str | None, now: float) -> None:
        s = self.state
        if name is None:
            if s.current is not None:
                self._end_step(s.current, "completed", None, now)
            return  # nothing open to end: an `::endgroup::` too many is harmless
        target = next((step for step in reversed(s.open_steps) if step.name == name), None)
        if target is None:
            self.warn(f"end of step {name!r} ignored: no open step has that name")
            return
        while s.current is not None:
            current = s.current
            self._end_step(current, "completed", None, now)
            if current is target:
                break

    def _error(self, message: str, ends: bool, metadata: dict[str, object]) -> None:
        s = self.state
        step = s.current
        if step is None:
            s.errors.append(message or "STEP_ERROR with no step running")
            self.emit(RunErrorRaised(s, message))
            return
        if metadata:
            step.metadata.setdefault("errors", []).append({"message": message, **metadata})
            self.emit(MetaSet(s, step, "errors", message, "metadata"))
        if ends:
            self._end_step(step, "failed", message or "step failed", self.clock())
        elif step.failure is None:
            step.failure = message or "step failed"
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
            target = "estimated_duration"
        elif step is not None and upper == "DESCRIPTION":
            step.description = value
            target = "description"
        else:
            (s if step is None else step).metadata[key] = value
            target = "metadata"
        self.emit(MetaSet(s, step, key, value, target))

    def _notice(self, level: str, message: str, metadata: dict[str, object]) -> None:
        s = self.state
        self.emit(NoticeRaised(s, s.current, level, message, metadata))
        if level in KEPT_NOTICES:
            self.warn(message if level == "warning" else f"{level}: {message}")

    def _test(self, result: m.TestResult) -> None:
        s = self.state
        step = s.current
        entry: dict[str, object] = {"name": result.name, "status": result.status}
        for key in ("duration_s", "message", "details"):
            if (value := getattr(result, key)) is not None:
                entry[key] = value
        (s if step is None else step).metadata.setdefault("tests", []).append(entry)
        self.emit(TestRecorded(s, step, result))

    # -- artifacts and warnings ------------------------------------------------------------

    def _artifact(self, path: str, description: str | None) -> None:
        s = self.state
        step = s.current
        from pathlib import Path

        source = Path(self.cwd, os.path.expanduser(path))
        art = ArtifactState(str(source), description, None if step is None else step.index)
        s.artifacts.append(art)
        artifact_id = new_id()
        created = self.clock()
        step_id = None if step is None else step.id

        def copy() -> None:
            done = copy_artifact(source, Path(self.artifacts_dir, s.id), artifact_id,
                                 max_size=self.artifact_max_size, budget=self.budget)
            art.stored, art.size, art.sha256 = done.stored, done.size, done.sha256
            self.emit(ArtifactCopied(s, step_id, art, artifact_id, path, description, created, done))
            if done.problem:
                self.warn(f"artifact {path} not copied: {done.problem}")

        self.copies.submit(copy)
        self.emit(ArtifactAdded(s, step, art, path))

    def warn(self, message: str) -> None:
        s = self.state
        if s.warn(message):
            self.emit(WarningRaised(s, s.current, message))


def _ending(outcome: Outcome) -> str:
    if outcome.crashed is not None:
        return f"stepflow stopped following the command: {outcome.crashed}"
    if outcome.timed_out:
        return "timed out"
    if outcome.interrupted is not None:
        return f"interrupted (signal {outcome.interrupted})"
    if outcome.stopped:
        return "stopped after a critical step failed"
    if outcome.returncode == -2:
        return "interrupted (Ctrl-C, signal 2)"
    if outcome.returncode == 130:
        return "interrupted (Ctrl-C: the command exited with status 130)"
    if outcome.returncode < 0:
        return f"killed by signal {-outcome.returncode}"
    return f"command exited with status {outcome.returncode}"

"""What happens during a run, as typed events: the recorder emits them, sinks receive them.

The recorder (stepflow.run.recorder) keeps the run's model (stepflow.state) up to date and
then tells every sink what changed, in order: the store writer and the view today; hooks,
exporters and a server tomorrow, each one more sink in the list, none an edit to the recorder.

An event names the run and step it concerns: the live objects the views draw, already
updated when the event is sent. A sink that keeps an event past `handle` (another thread,
another process) copies what it needs then. Sinks are called on the reader's thread, except
`ArtifactCopied` and the warnings a copy raises, which come from the copying thread.
"""

from __future__ import annotations

from collections.abc import Mapping

from stepflow.record import field, record
from stepflow.state import ArtifactState, RunState, StepState
from stepflow.typenames import Protocol

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)

if TYPE_CHECKING:
    from typing import Any

    from stepflow.dialects.base import TestResult
    from stepflow.run.artifacts import Copied


@record(frozen=True)
class RunStarted:
    """The run began; `facts` are who, where and with what (working_directory, tags, user_name,
    host, pid, pid_started, metadata, environment), as stored with it."""

    run: RunState
    facts: Mapping[str, Any] = field(default_factory=dict)


@record(frozen=True)
class StepStarted:
    """`step` began (inside `step.parent` when nested), at `step.started`."""

    run: RunState
    step: StepState


@record(frozen=True)
class StepEnded:
    """`step` ended with `status` (completed or failed) and maybe an `error`, at `step.ended`."""

    run: RunState
    step: StepState
    status: str
    error: str | None = None


@record(frozen=True)
class LinesRead:
    """`count` complete lines of `stream` (1 stdout, 2 stderr), joined by b"\\n", masked.

    `first` is the run's number of the first of them (0-based); `cut` bytes were dropped from
    a single over-long line; `step` is the innermost step running, if any."""

    run: RunState
    step: StepState | None
    stream: int
    data: bytes
    count: int
    cut: int
    first: int
    at: float


@record(frozen=True)
class ArtifactAdded:
    """The command announced a file (`path` as it wrote it); it is being copied aside."""

    run: RunState
    step: StepState | None
    artifact: ArtifactState
    path: str


@record(frozen=True)
class ArtifactCopied:
    """The copy of an announced file is done (or failed: `copy.problem`); `id` is the artifact's."""

    run: RunState
    step_id: str | None
    artifact: ArtifactState
    id: str
    path: str
    description: str | None
    created: float
    copy: Copied


@record(frozen=True)
class WarningRaised:
    """A warning kept on the run (a marker ignored, an artifact not copied, a warning notice)."""

    run: RunState
    step: StepState | None
    message: str


@record(frozen=True)
class RunErrorRaised:
    """`STEP_ERROR` with no step running: an error on the run itself (`run.errors`)."""

    run: RunState
    message: str


@record(frozen=True)
class MetaSet:
    """`key=value` was set on `step` (or on the run when `step` is None); `target` says where it
    went: "estimated_duration" or "description" of the step, or its (or the run's) "metadata"."""

    run: RunState
    step: StepState | None
    key: str
    value: str
    target: str


@record(frozen=True)
class TestRecorded:
    """One test's result, kept in the step's metadata["tests"] (the run's when no step runs)."""

    __test__ = False  # not a pytest test class

    run: RunState
    step: StepState | None
    result: TestResult


@record(frozen=True)
class NoticeRaised:
    """An annotation from the command (debug, notice, warning, progress). Warning and notice
    levels are also kept on the run as warnings (a WarningRaised follows); the others only
    pass by, for the sinks that want them."""

    run: RunState
    step: StepState | None
    level: str
    message: str
    metadata: Mapping[str, object] = field(default_factory=dict)


@record(frozen=True)
class RunFinished:
    """The run ended with `run.status`; `error` is its error message, if any."""

    run: RunState
    exit_code: int
    error: str | None
    cpu_seconds: float | None


Event = (RunStarted | StepStarted | StepEnded | LinesRead | ArtifactAdded | ArtifactCopied | WarningRaised
         | RunErrorRaised | MetaSet | TestRecorded | NoticeRaised | RunFinished)


class Sink(Protocol):
    """Something that follows a run through its events (the store writer, a view, a hook)."""

    def handle(self, event: Event) -> None:
        """Take one event. Must not raise for an event kind it does not know: ignore it."""
        ...

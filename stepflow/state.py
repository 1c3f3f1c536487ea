"""The model of a run as it happens: what the recorder keeps up to date and the views draw."""

from __future__ import annotations

from collections import deque

from stepflow.record import field, record

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any

MAX_WARNINGS = 100  # kept on the run; later ones are counted, not stored
MAX_STEPS_KEPT = 1000  # steps held in memory for the views; a million-step run stays small


@record
class StepState:
    index: int
    id: str
    name: str
    started: float  # wall clock, seconds since the epoch
    status: str = "running"
    ended: float | None = None
    stop_on_error: bool = False
    expected: float | None = None  # seconds, from [duration=N] or META:ESTIMATED_DURATION
    description: str | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    lines: int = 0
    # Resource use sampled while this step ran (stepflow.run.resources); None when never sampled.
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    max_processes: int | None = None
    parent: StepState | None = None  # the step it was opened inside (nested markers)
    failure: str | None = None  # marked failed while still open (StepError(ends=False)): ends failed

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


@record
class ArtifactState:
    path: str
    description: str | None
    step_index: int | None
    stored: str | None = None
    size: int = 0
    sha256: str | None = None


@record
class RunState:
    id: str
    name: str
    command: str
    started: float
    status: str = "running"
    ended: float | None = None
    exit_code: int | None = None
    steps: list[StepState] = field(default_factory=list)  # the most recent MAX_STEPS_KEPT or more
    step_count: int = 0
    completed_steps: int = 0
    current: StepState | None = None  # the innermost open step: where lines and markers go
    open_steps: list[StepState] = field(default_factory=list)  # outermost first; current is last
    warnings: list[str] = field(default_factory=list)
    warnings_dropped: int = 0
    errors: list[str] = field(default_factory=list)
    artifacts: list[ArtifactState] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    lines: int = 0
    lost_lines: int = 0
    tail: deque[tuple[int, bytes]] = field(default_factory=lambda: deque(maxlen=200))
    # The command's process tree, sampled (stepflow.run.resources) and settled with wait4's figures.
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    max_processes: int | None = None

    def add_step(self, step: StepState) -> None:
        self.steps.append(step)
        self.step_count += 1
        if len(self.steps) >= 2 * MAX_STEPS_KEPT:
            del self.steps[:MAX_STEPS_KEPT]  # amortised: one slice every MAX_STEPS_KEPT steps

    def warn(self, message: str) -> bool:
        """Keep a warning on the run; False once MAX_WARNINGS are kept and this one is only counted."""
        if len(self.warnings) >= MAX_WARNINGS:
            self.warnings_dropped += 1
            return False
        self.warnings.append(message)
        return True

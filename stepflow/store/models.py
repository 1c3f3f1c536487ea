"""What the store holds, as plain data: the rows it returns and the writes it accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STDOUT = 1
STDERR = 2
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}

RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "timed_out", "abandoned")
STEP_STATUSES = ("pending", "running", "completed", "failed", "skipped")
OPEN_STATUSES = ("running", "pending")  # a run that may still change; prune and ls leave it be


@dataclass(slots=True)
class Run:
    """One row of `executions`. JSON columns are decoded; text that is not JSON is kept as text."""

    id: str
    name: str
    command: str
    status: str
    created_at: str
    working_directory: str | None = None
    exit_code: int | None = None
    error_message: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    environment: Any = None
    user_name: str | None = None
    tags: Any = None
    total_steps: int = 0
    completed_steps: int = 0
    current_step_index: int = -1
    metadata: Any = None
    created_ts: float | None = None
    host: str | None = None
    pid: int | None = None
    pid_started: float | None = None
    warnings: Any = None
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    max_processes: int | None = None
    line_count: int = 0
    lost_lines: int = 0
    legacy_status: str | None = None  # what a StepFlow Monitor server wrote, when shown otherwise


@dataclass(slots=True)
class Step:
    """One row of `steps`."""

    id: str
    execution_id: str
    name: str
    step_index: int
    status: str
    created_at: str
    description: str | None = None
    exit_code: int | None = None
    error_message: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    estimated_duration: float | None = None
    stop_on_error: bool = False
    metadata: Any = None
    cpu_seconds: float | None = None
    peak_rss: int | None = None
    max_processes: int | None = None
    legacy_status: str | None = None


@dataclass(slots=True)
class Artifact:
    """One row of `artifacts`."""

    id: str
    execution_id: str
    name: str
    file_path: str
    created_at: str
    step_id: str | None = None
    description: str | None = None
    file_name: str | None = None
    file_size: int = 0
    mime_type: str | None = None
    artifact_type: str | None = None
    tags: Any = None
    is_public: bool = True
    retention_days: int | None = None
    metadata: Any = None
    sha256: str | None = None
    source_path: str | None = None


@dataclass(slots=True)
class LogBlock:
    """Consecutive lines of one stream in one step, as read together; `data` joins them by b"\\n"."""

    execution_id: str
    step_index: int | None
    stream: int
    first_line: int
    line_count: int
    ts: float
    data: bytes
    cut: int = 0


@dataclass(slots=True)
class LogLine:
    """One line of output as `logs` shows it."""

    number: int
    step_index: int | None
    stream: int
    ts: float
    text: bytes
    cut: int = 0


# Writes. A batch of these is applied in one transaction, in order.


@dataclass(slots=True)
class Insert:
    """A new row in `table` (executions, steps or artifacts)."""

    table: str
    values: dict[str, Any]


@dataclass(slots=True)
class Update:
    """Set `values` on the row of `table` whose id is `id`."""

    table: str
    id: str
    values: dict[str, Any] = field(default_factory=dict)


Write = Insert | Update | LogBlock

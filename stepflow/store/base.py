"""The storage seam: the `Store` protocol, the rows it returns and the typed writes it accepts.

Plain data and protocols only; no backend is imported here, so a second backend (PostgreSQL,
issue 13) and readers such as `stepflow serve` (issue 14) depend on this module alone. Field
names are stepflow's domain names; how a backend lays them out (SQLite keeps the legacy
StepFlow Monitor tables, see stepflow.store.sqlite) is its own business.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator, Sequence

from stepflow.record import field, record
from stepflow.typenames import Protocol, TypedDict

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any, NamedTuple, Unpack

STDOUT = 1
STDERR = 2
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}

RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "timed_out", "abandoned",
                "skipped")  # skipped: --lock found the job still running (stepflow.cron.lock)
OPEN_STATUSES = ("running", "pending")  # a run that may still change; prune and ls leave it be
JSON_FIELDS = frozenset({"environment", "tags", "metadata", "warnings"})  # held as JSON text by every backend


_EMPTY = {"[]": list, "{}": dict}


def decode_json(field_name: str, value: Any) -> Any:
    """A stored value as Python: a JSON field's text decoded; JSON that does not parse (legacy
    rows) is returned as the text it is."""
    if field_name in JSON_FIELDS and isinstance(value, str):
        if value in _EMPTY:
            return _EMPTY[value]()  # most runs' tags and metadata: no JSON parser needed
        import json  # readers only: a run's writer never decodes

        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# -- rows ----------------------------------------------------------------------------------


@record(slots=True)  # rows by the thousand
class Run:
    """One run. JSON-valued fields are decoded; legacy text that is not JSON is kept as text."""

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


@record(slots=True)  # rows by the thousand
class Step:
    """One step of a run."""

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


@record(slots=True)  # rows by the thousand
class Artifact:
    """A file a run announced, as copied into the store."""

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


@record
class LogBlock:
    """Consecutive lines of one stream in one step, as read together; `data` joins them by b"\\n".

    Both a write (a run's output going in) and what backends keep.
    """

    execution_id: str
    step_index: int | None
    stream: int
    first_line: int
    line_count: int
    ts: float
    data: bytes
    cut: int = 0


@record(slots=True)  # rows by the thousand
class LogLine:
    """One line of output as `logs` shows it."""

    number: int
    step_index: int | None
    stream: int
    ts: float
    text: bytes
    cut: int = 0


@record(frozen=True, slots=True)  # rows by the thousand
class StepDuration:
    """One step of an earlier completed run, as `step_durations` returns it (ETA hints)."""

    run_id: str
    step_index: int | None
    name: str | None
    status: str | None
    seconds: float | None


if TYPE_CHECKING:
    class RunOutcome(NamedTuple):
        """How one run ended, lightly: what statistics and /metrics count, as `run_outcomes`
        returns it. A tuple, not a record: a store of 100,000 runs makes 100,000 of them per
        /metrics scrape. (At run time the same fields through collections.namedtuple, which
        needs no typing.)"""

        name: str
        status: str
        created_ts: float | None
        seconds: float | None  # completed_at - started_at; None unless both are set
        completed_ts: float | None  # completed_at as Unix time; None when not set
else:
    RunOutcome = namedtuple("RunOutcome", "name status created_ts seconds completed_ts")


@record(frozen=True)
class RunQuery:
    """Which runs `find_runs` returns, newest first (by created_ts)."""

    status: str | None = None
    name_glob: str | None = None  # fnmatch-style: *, ?, [...]; no wildcard: the exact name
    tag: str | None = None
    since_ts: float | None = None
    host: str | None = None  # only runs recorded on this host (its exact name)
    limit: int | None = None
    offset: int = 0  # skip this many first (a server's pages)


ALL_RUNS = RunQuery()


# -- writes: a batch is applied in one transaction, in order --------------------------------


@record
class NewRun:
    """A run starts: store `run`."""

    run: Run

    @classmethod
    def of(cls, values: dict[str, Any]) -> NewRun:
        """From a Run's fields by name (tests, benchmarks, importers)."""
        return cls(Run(**values))


@record
class NewStep:
    """A step starts: store `step`."""

    step: Step

    @classmethod
    def of(cls, values: dict[str, Any]) -> NewStep:
        """From a Step's fields by name."""
        return cls(Step(**values))


@record
class NewArtifact:
    """An artifact was copied: store `artifact`."""

    artifact: Artifact

    @classmethod
    def of(cls, values: dict[str, Any]) -> NewArtifact:
        """From an Artifact's fields by name."""
        return cls(Artifact(**values))


class RunFields(TypedDict, total=False):
    """The fields of a run a RunChange may set (a Run's field names and types)."""

    status: str
    exit_code: int | None
    error_message: str | None
    completed_at: str | None
    total_steps: int
    completed_steps: int
    current_step_index: int
    metadata: Any
    warnings: Any
    cpu_seconds: float | None
    peak_rss: int | None
    max_processes: int | None
    line_count: int
    lost_lines: int


class StepFields(TypedDict, total=False):
    """The fields of a step a StepChange may set (a Step's field names and types)."""

    status: str
    exit_code: int | None
    error_message: str | None
    completed_at: str | None
    estimated_duration: float | None
    description: str | None
    metadata: Any
    cpu_seconds: float | None
    peak_rss: int | None
    max_processes: int | None


class _Change:
    """Set the fields given as keywords on the row named by `id`; others keep their value.

    Keywords are checked by mypy against RunFields/StepFields; held as the dict Python built
    for them, so a change costs what a dict costs (a million-step run makes millions).
    """

    __slots__ = ("id", "values")

    def __init__(self, id: str, values: dict[str, Any]) -> None:
        self.id = id
        self.values = values

    def changes(self) -> dict[str, Any]:
        """The fields this change sets, by name (a Run's or a Step's field names)."""
        return self.values

    def merge(self, later: _Change) -> None:
        """Take the fields `later` sets (same row), as if both were applied in order."""
        self.values.update(later.values)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (self.id, self.values) == (other.id, other.values)  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclasses beside it

    def __repr__(self) -> str:
        fields = "".join(f", {k}={v!r}" for k, v in self.values.items())
        return f"{type(self).__name__}({self.id!r}{fields})"


class RunChange(_Change):
    """Set some fields of run `id`: RunChange(run_id, status="failed", exit_code=1)."""

    __slots__ = ()

    def __init__(self, id: str, **values: Unpack[RunFields]) -> None:
        super().__init__(id, dict(values))


class StepChange(_Change):
    """Set some fields of step `id`: StepChange(step_id, status="completed")."""

    __slots__ = ()

    def __init__(self, id: str, **values: Unpack[StepFields]) -> None:
        super().__init__(id, dict(values))


Change = RunChange | StepChange
Write = NewRun | NewStep | NewArtifact | RunChange | StepChange | LogBlock


# -- capabilities --------------------------------------------------------------------------


@record
class Deleted:
    """One batch of runs `delete_runs` removed (or, in a dry run, would remove)."""

    run_ids: list[str]
    runs: int = 0
    steps: int = 0
    artifacts: int = 0
    log_lines: int = 0
    freed_bytes: int = 0  # space freed inside the database (0 where the backend cannot tell)


@record
class Health:
    """What a backend knows of its own health: facts to show and problems found (empty: healthy)."""

    checks: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Watch(Protocol):
    """Change notification: a waiter learns that someone committed, without reading anything.

    `cursor()` is where the store is now; `wait(cursor, timeout)` returns a later cursor once a
    commit (by any connection or process) happened after `cursor`, or `cursor` itself when
    `timeout` seconds passed first. One Watch may serve many threads: waiters share its polls
    (SQLite) or its one listening connection (PostgreSQL), never one each.
    """

    def cursor(self) -> int: ...
    def wait(self, cursor: int, timeout: float) -> int: ...
    def close(self) -> None: ...


class Store(Protocol):
    """The seam between stepflow and a storage backend. Reads never write, except as said."""

    url: str  # where it is, password masked: fit for messages

    def write(self, writes: Sequence[Write]) -> None: ...
    # A spooled batch (stepflow.store.spool), at most once per (run_id, seq): the batch and the
    # record of (run_id, seq) in one transaction, waiting at most `wait` s for the write lock;
    # False when the store had it already. Every backend needs a small table for it.
    def apply_spooled(self, run_id: str, seq: int, writes: Sequence[Write], *, wait: float = ...) -> bool: ...
    def find_runs(self, query: RunQuery = ...) -> list[Run]: ...
    def get_run(self, run_id: str) -> Run | None: ...
    def runs_with_prefix(self, prefix: str, *, limit: int) -> list[Run]: ...
    def steps(self, run_id: str) -> list[Step]: ...
    def artifacts(self, run_id: str) -> list[Artifact]: ...
    def log_lines(
        self,
        run_id: str,
        *,
        step_index: int | None = None,
        stream: int | None = None,
        grep: bytes | None = None,
        after_line: int = -1,
    ) -> Iterator[LogLine]: ...
    def stored_lines(self, run_id: str) -> int: ...
    def step_durations(self, name: str, *, runs: int = 20) -> list[StepDuration]: ...
    def job_counts(self) -> dict[str, int]: ...
    def status_counts(self) -> dict[str, int]: ...
    def run_outcomes(self, query: RunQuery = ...) -> list[RunOutcome]: ...
    def counts(self) -> dict[str, int]: ...  # rows per table, and log_lines: `db stats`
    def mark_abandoned(self, run_ids: Sequence[str], *, message: str, wait: float = 0.25) -> int: ...
    def watch(self) -> Watch: ...
    def delete_runs(
        self, *, before_ts: float, status: str | None = None, dry_run: bool = False, batch: int = 500
    ) -> Iterator[Deleted]: ...
    def health(self, *, integrity: bool = True) -> Health: ...
    def optimize(self) -> dict[str, Any]: ...
    def close(self) -> None: ...

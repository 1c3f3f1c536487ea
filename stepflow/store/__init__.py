"""Where runs are kept. The runner and the CLI see only `Store` and `open_store`.

A second backend (PostgreSQL for fleets) implements the same methods; nothing above this
package needs to change.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from stepflow.store.models import Artifact, LogLine, Run, Step, Write
from stepflow.store.sqlite import RunQuery, SqliteStore, StepDuration, open_store


class Store(Protocol):
    """The seam between stepflow and a storage backend."""

    def write(self, writes: Sequence[Write]) -> None: ...
    def find_runs(self, query: RunQuery = ...) -> list[Run]: ...
    def get_run(self, run_id: str) -> Run | None: ...
    def resolve(self, ref: str) -> Run: ...
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
    def data_version(self) -> int: ...
    def step_durations(self, name: str, *, runs: int = 20) -> list[StepDuration]: ...
    def mark_abandoned(self, run_ids: Sequence[str], *, message: str, busy_ms: int = 250) -> int: ...
    def close(self) -> None: ...


__all__ = ["Store", "RunQuery", "SqliteStore", "StepDuration", "open_store"]

"""What earlier runs with the same name tell the live view: expected step durations and steps.

`hints_from_rows` is pure; `load_hints` reads the store once and never fails the run: an
unreadable, missing or legacy store simply gives no hints.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from stepflow.config import Settings
from stepflow.record import field, record
from stepflow.store.base import StepDuration

RUNS = 20  # earlier completed runs looked at for the median of a step's duration
BUSY_MS = 500  # a store busier than this gives no hints rather than a late view


@record(frozen=True)
class Hints:
    """Expectations for a run, from the latest completed runs with the same name."""

    medians: dict[str, float] = field(default_factory=dict)  # step name -> median seconds
    plan: tuple[tuple[str, float | None], ...] = ()  # steps of the last successful run
    expected_steps: int | None = None  # None: no successful run yet

    def expected(self, name: str, given: float | None) -> float | None:
        """A step's expected duration: what the script said, else the median of earlier runs."""
        return given if given is not None else self.medians.get(name)


NO_HINTS = Hints()


def hints_from_rows(rows: Iterable[StepDuration]) -> Hints:
    """Hints from `Store.step_durations` rows (newest run first)."""
    durations: dict[str, list[float]] = {}
    plan: list[tuple[str, float | None]] = []
    last_run: str | None = None
    for row in rows:
        if last_run is None:
            last_run = row.run_id
        if row.name is None:
            continue
        if row.run_id == last_run:
            plan.append((row.name, row.seconds if row.status == "completed" else None))
        if row.status == "completed" and row.seconds is not None and row.seconds >= 0:
            durations.setdefault(row.name, []).append(row.seconds)
    return Hints(
        medians={name: statistics.median(values) for name, values in durations.items()},
        plan=tuple(plan),
        expected_steps=None if last_run is None else len(plan),
    )


def load_hints(settings: Settings, name: str) -> Hints:
    """Read the hints for runs named `name`; NO_HINTS when the store cannot tell. Read-only."""
    try:
        from stepflow.record import replace
        from stepflow.store import exists, open_store

        if not exists(settings):
            return NO_HINTS
        store = open_store(replace(settings, busy_timeout_ms=min(BUSY_MS, settings.busy_timeout_ms)), readonly=True)
        try:
            return hints_from_rows(store.step_durations(name, runs=RUNS))
        finally:
            store.close()
    except Exception:  # noqa: BLE001 - hints are optional; never fail or delay a run for them
        return NO_HINTS

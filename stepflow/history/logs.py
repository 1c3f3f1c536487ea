"""A run's output lines, a step named by the user, and `follow`: a run's new lines as they come.

Following waits on the store's `watch` (SQLite: PRAGMA data_version, PostgreSQL: LISTEN), so
many followers in one process (a server's clients) share its one notification source. Every
FOLLOW_CHECK seconds without a commit, the run is looked at again all the same: a run whose
stepflow process died commits nothing more, and is noticed as abandoned that way.
"""

from __future__ import annotations

from collections.abc import Iterator

from stepflow.errors import NotFoundError
from stepflow.history import abandoned
from stepflow.record import record
from stepflow.store.base import OPEN_STATUSES, LogLine, Run, Store, Watch

FOLLOW_CHECK = 1.0  # seconds between checks that a quiet run's stepflow process is still alive


@record(frozen=True)
class RunChanged:
    """The run moved on while followed: its status, current step or counts changed."""

    run: Run


@record(frozen=True)
class CaughtUp:
    """Every line committed so far was yielded; the follow waits now (flush, or send a heartbeat)."""


@record(frozen=True)
class Ended:
    """The followed run is no longer running or pending (`run.status` says how it ended); last event."""

    run: Run




def lines(
    store: Store, run_id: str, *, step_index: int | None = None, stream: int | None = None,
    grep: bytes | None = None, after_line: int = -1,
) -> Iterator[LogLine]:
    """A run's output lines in the order they were read (see Store.log_lines). Read-only."""
    return store.log_lines(run_id, step_index=step_index, stream=stream, grep=grep, after_line=after_line)


def step_tails(store: Store, run_id: str, indexes: list[int], *, count: int = 10) -> dict[int, list[tuple[int, str]]]:
    """The last `count` lines of each step in `indexes`, as (stream, text): what `show` prints
    under a failed step. Read-only."""
    from collections import deque

    tails: dict[int, list[tuple[int, str]]] = {}
    for index in indexes:
        kept: deque[tuple[int, str]] = deque(maxlen=count)
        for line in store.log_lines(run_id, step_index=index):
            text = line.text.rstrip(b"\r").rsplit(b"\r", 1)[-1] if b"\r" in line.text else line.text
            kept.append((line.stream, text.decode("utf-8", "replace")))
        if kept:
            tails[index] = list(kept)
    return tails


def find_step(store: Store, run: Run, step: str, *, wait: bool = False, watch: Watch | None = None) -> int:
    """`--step`: a step's name, or its number as `show` lists it (1 is the first step); its index.

    With `wait` (logs --follow), a step the running job has not reached yet is waited for.

    Raises:
        NotFoundError: no such step, and the run can no longer add it.
    """
    own = wait and watch is None
    w = store.watch() if own else watch
    try:
        cursor = w.cursor() if w is not None else 0
        while True:
            steps = store.steps(run.id)
            named = [s for s in steps if s.name == step]
            if named:
                return named[0].step_index
            if step.isascii() and step.isdigit() and any(s.step_index == int(step) - 1 for s in steps):
                return int(step) - 1
            current = store.get_run(run.id) if wait else None
            if current is not None:
                abandoned.notice(store, [current])
            if current is None or current.status not in OPEN_STATUSES or w is None:
                names = ", ".join(repr(s.name) for s in steps[:10]) or "none"
                raise NotFoundError(f"run {run.id[:8]} has no step {step!r}; steps: {names}")
            cursor = w.wait(cursor, FOLLOW_CHECK)
    finally:
        if own and w is not None:
            w.close()


def follow(
    store: Store, run_id: str, *, step_index: int | None = None, stream: int | None = None,
    grep: bytes | None = None, after_line: int = -1, watch: Watch | None = None, check: float = FOLLOW_CHECK,
) -> Iterator[LogLine | CaughtUp | RunChanged | Ended]:
    """The run's lines after `after_line`, then new ones as they are committed, until it ends.

    Yields LogLine for each line, CaughtUp before each wait (at least every `check` seconds),
    RunChanged when the run's row changes, and Ended once, last, when the run is no longer
    running or pending (or is gone: then nothing more). `watch`: a
    shared Watch (a server's); by default one of the store's own, closed at the end.
    """
    own = watch is None
    w = store.watch() if watch is None else watch
    try:
        cursor = w.cursor()  # before reading: a commit from now on moves it
        run = store.get_run(run_id)
        if run is None:
            return
        last = after_line
        for line in lines(store, run_id, step_index=step_index, stream=stream, grep=grep, after_line=last):
            yield line
            last = line.number
        seen = _progress(run)
        while run.status in OPEN_STATUSES:
            yield CaughtUp()
            new = w.wait(cursor, check)
            changed, cursor = new != cursor, new
            if changed:
                for line in lines(store, run_id, step_index=step_index, stream=stream, grep=grep, after_line=last):
                    yield line
                    last = line.number
            current = store.get_run(run_id)
            if current is None:
                return
            abandoned.notice(store, [current])
            run = current
            if _progress(run) != seen:
                seen = _progress(run)
                if run.status in OPEN_STATUSES:
                    yield RunChanged(run)
        for line in lines(store, run_id, step_index=step_index, stream=stream, grep=grep, after_line=last):
            yield line  # whatever was committed with the final status
        yield Ended(run)
    finally:
        if own:
            w.close()


def _progress(run: Run) -> tuple[object, ...]:
    return (run.status, run.current_step_index, run.total_steps, run.completed_steps)

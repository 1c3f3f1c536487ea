"""Which runs: a filtered list with the abandoned sweep, one run by id, prefix or `last`."""

from __future__ import annotations

from stepflow.errors import NotFoundError, UsageError
from stepflow.history import abandoned
from stepflow.history.detail import run_detail
from stepflow.store.base import ALL_RUNS, OPEN_STATUSES, Run, RunQuery, Store

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any

MIN_PREFIX = 4  # shorter prefixes match too much to be a safe way to name a run
SHOWN_MATCHES = 5


def list_runs(store: Store, query: RunQuery = ALL_RUNS) -> list[Run]:
    """Runs matching `query`, newest first, those whose stepflow process is gone shown (and,
    best effort, stored) as `abandoned`; a query for open runs leaves those out."""
    gone = abandoned.sweep(store)
    runs = [r for r in store.find_runs(query) if not (r.id in gone and query.status in OPEN_STATUSES)]
    for run in runs:
        if run.id in gone:
            run.status = "abandoned"
    return runs


FAILED_STATUSES = ("failed", "timed_out", "cancelled", "abandoned")  # `ls --failed`


def list_failed(store: Store, query: RunQuery = ALL_RUNS) -> list[Run]:
    """`ls --failed`: runs that did not succeed (FAILED_STATUSES), newest first, as list_runs."""
    from stepflow.record import replace

    found = {r.id: r for status in FAILED_STATUSES for r in list_runs(store, replace(query, status=status))}
    found.update({r.id: r for r in list_runs(store, replace(query, status="running")) if r.status == "abandoned"})
    runs = sorted(found.values(), key=lambda r: r.created_ts or 0.0, reverse=True)
    return runs if query.limit is None else runs[: query.limit]


def resolve(store: Store, ref: str, *, name: str | None = None) -> Run:
    """The run named by a full id, a unique prefix of at least 4 characters, or `last`
    (the newest; with `name`, the newest of that name or glob).

    A legacy run an old StepFlow Monitor server may still be writing is caught up first
    (maintenance.legacy_refresh: its rewritten log files, its steps left running).

    Raises:
        NotFoundError: no run, or several, match.
        UsageError: the prefix is too short to be safe.
    """
    from stepflow.maintenance import legacy_refresh

    return legacy_refresh.refresh(store, _find(store, ref, name))


def _find(store: Store, ref: str, name: str | None) -> Run:
    ref = ref.strip().encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if ref.lower() == "last":
        runs = store.find_runs(RunQuery(limit=1, name_glob=name))
        if not runs:
            if name is not None:
                raise NotFoundError(f"no run named {name!r}; see \"stepflow ls\"")
            raise NotFoundError(f"no runs recorded yet in {store.url}")
        return runs[0]
    exact = store.get_run(ref)
    if exact is not None:
        return exact
    if len(ref) < MIN_PREFIX:
        raise UsageError(f"run id {ref!r} is too short; give at least {MIN_PREFIX} characters")
    matches = store.runs_with_prefix(ref, limit=SHOWN_MATCHES + 1)
    if not matches:
        raise NotFoundError(f"no run with id {ref!r}; see \"stepflow ls\"")
    if len(matches) > 1:
        shown = ", ".join(m.id[:12] for m in matches[:SHOWN_MATCHES])
        more = " and more" if len(matches) > SHOWN_MATCHES else ""
        raise NotFoundError(f"run id {ref!r} is ambiguous: {shown}{more}; give more characters")
    return matches[0]


def show_run(store: Store, ref: str, *, name: str | None = None) -> dict[str, Any]:
    """`show`: the run named by `ref` (see resolve), checked for abandonment, as a JSON-ready dict."""
    run = resolve(store, ref, name=name)
    abandoned.notice(store, [run])
    steps = store.steps(run.id)
    if run.status not in OPEN_STATUSES:
        # A step still `running` in a run that ended without closing it (stepflow was killed):
        # it ended as its run did.
        for step in steps:
            if step.status in OPEN_STATUSES:
                step.status = "abandoned" if run.status == "abandoned" else "failed"
                step.error_message = step.error_message or run.error_message
    if run.status in OPEN_STATUSES or run.status == "abandoned" or not run.line_count:
        run.line_count = max(run.line_count, store.stored_lines(run.id))  # written only at the end
    return run_detail(run, steps, store.artifacts(run.id))

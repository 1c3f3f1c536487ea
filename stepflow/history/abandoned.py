"""Runs whose stepflow process is gone: shown as `abandoned`, and stored so when noticed.

A run is recorded with the pid of its stepflow process and that process's start time, so a
pid the system has since given to another process is not mistaken for it (stepflow.procs).
Rows from the legacy tool have no pid: if they say `running`, nothing is running them.
Noticing writes in one short transaction and gives up quietly on a read-only or busy store:
looking at history must never fail because of it.
"""

from __future__ import annotations

from collections.abc import Iterable

from stepflow import procs
from stepflow.config import this_host
from stepflow.errors import StepflowError
from stepflow.store.base import OPEN_STATUSES, Run, RunQuery, Store

MESSAGE = "the stepflow process that ran it is gone"

# Runs with a spool file still waiting (stepflow.store.spool): their process is gone but their
# end is on its way to the store, so they are not abandoned. Filled by `hold` when a command opens.
_spooled: set[str] = set()


def hold(run_ids: Iterable[str]) -> None:
    """Never judge these runs abandoned in this process: part of each is still spooled."""
    _spooled.update(run_ids)


def is_abandoned(run: Run, *, host: str | None = None) -> bool:
    """True when `run` says running/pending but no process can still finish it.

    A run recorded on another host is never judged: its processes cannot be seen from here.
    This host is `host`, else the name runs here record (STEPFLOW_HOST, else the node name):
    containers that share a node name are told apart as their runs are.
    """
    if run.status not in OPEN_STATUSES or run.id in _spooled:
        return False
    if run.pid is None:
        # Not run by stepflow: rows an old server left running were marked by migrate; rows it
        # writes now (it may still run beside stepflow) are its own to finish.
        return False
    if run.host and run.host != (host or this_host()):
        return False
    return not procs.is_alive(run.pid, run.pid_started)


def notice(store: Store, runs: Iterable[Run]) -> list[Run]:
    """Mark the abandoned ones among `runs`, in these objects and (best effort) in the store.

    Returns the runs now shown as abandoned. A run that finished between being read and being
    checked keeps the status it finished with (read back from the store).
    """
    gone = [run for run in runs if is_abandoned(run)]
    if not gone:
        return []
    try:
        changed = store.mark_abandoned([run.id for run in gone], message=MESSAGE)
    except StepflowError:
        changed = len(gone)  # read-only or busy: shown as abandoned all the same
    if changed != len(gone):
        for run in gone:  # some finished at the last moment; show what the store now says
            fresh = store.get_run(run.id)
            if fresh is not None and fresh.status not in OPEN_STATUSES:
                run.status, run.error_message = fresh.status, fresh.error_message
                run.completed_at, run.exit_code = fresh.completed_at, fresh.exit_code
    result = []
    for run in gone:
        if run.status in OPEN_STATUSES:
            run.status = "abandoned"
            run.error_message = run.error_message or MESSAGE
        if run.status == "abandoned":
            result.append(run)
    return result


def sweep(store: Store) -> set[str]:
    """Check every run that says running or pending; the ids of those that are abandoned."""
    candidates = [run for status in OPEN_STATUSES for run in store.find_runs(RunQuery(status=status))]
    return {run.id for run in notice(store, candidates)}

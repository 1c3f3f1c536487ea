"""The read library on its own (what `stepflow serve` will call): follow, resolve, list."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stepflow.config import load_settings
from stepflow.errors import NotFoundError, UsageError
from stepflow.history import CaughtUp, Ended, RunChanged, follow, list_runs, resolve, show_run
from stepflow.store import LogBlock, NewRun, NewStep, Run, RunChange, RunQuery, Step, open_store
from tests.conftest import wait_for

T0 = 1_750_000_000.0


def new_run(run_id: str, **fields: object) -> NewRun:
    values: dict[str, object] = {"name": "job", "command": "c", "status": "completed",
                                 "created_at": "2025-06-15T12:00:00+00:00", "created_ts": T0}
    values.update(fields)
    return NewRun(Run(id=run_id, **values))  # type: ignore[arg-type]


def test_follow_yields_new_lines_run_changes_and_the_end(storage: Path) -> None:
    settings = load_settings()
    store, writer = open_store(settings), open_store(settings)
    writer.write([new_run("r1", status="running"), LogBlock("r1", None, 1, 0, 1, T0, b"first")])
    events: list[object] = []
    follower = threading.Thread(target=lambda: events.extend(follow(store, "r1", check=0.2)))
    try:
        follower.start()
        assert wait_for(lambda: any(isinstance(e, CaughtUp) for e in events))
        writer.write([NewStep(Step(id="s0", execution_id="r1", name="build", step_index=0, status="running",
                                   created_at="t")),
                      RunChange("r1", total_steps=1, current_step_index=0),
                      LogBlock("r1", 0, 2, 1, 2, T0, b"second\nthird")])
        assert wait_for(lambda: any(isinstance(e, RunChanged) for e in events))
        writer.write([LogBlock("r1", 0, 1, 3, 1, T0, b"last"), RunChange("r1", status="failed", exit_code=3)])
        follower.join(30)
        assert not follower.is_alive()
    finally:
        store.close()
        writer.close()
    texts = [e.text for e in events if hasattr(e, "text")]
    assert texts == [b"first", b"second", b"third", b"last"]
    assert isinstance(events[-1], Ended) and events[-1].run.status == "failed"
    changed = [e for e in events if isinstance(e, RunChanged)]
    assert changed and changed[0].run.current_step_index == 0


def test_follow_of_a_finished_run_gives_its_lines_and_ends(storage: Path) -> None:
    store = open_store(load_settings())
    try:
        store.write([new_run("r1"), LogBlock("r1", None, 1, 0, 2, T0, b"a\nb")])
        events = list(follow(store, "r1"))
        assert [getattr(e, "text", None) for e in events[:-1]] == [b"a", b"b"]
        assert isinstance(events[-1], Ended)
        assert list(follow(store, "missing")) == []
    finally:
        store.close()


def test_resolve_last_prefix_and_errors(storage: Path) -> None:
    store = open_store(load_settings())
    try:
        with pytest.raises(NotFoundError, match="no runs recorded yet in "):
            resolve(store, "last")
        store.write([new_run("abcd1111-x", created_ts=T0), new_run("abcd2222-y", created_ts=T0 + 1),
                     new_run("ffff0000-z", created_ts=T0 - 5, status="running")])
        assert resolve(store, "last").id == "abcd2222-y"
        assert resolve(store, "ABCD1").id == "abcd1111-x"
        assert resolve(store, " ffff0000-z ").id == "ffff0000-z"
        with pytest.raises(UsageError, match="too short"):
            resolve(store, "abc")
        with pytest.raises(NotFoundError, match="ambiguous: abcd1111-x, abcd2222-y; give more"):
            resolve(store, "abcd")
        with pytest.raises(NotFoundError, match="no run with id 'zzzz'"):
            resolve(store, "zzzz")
        assert show_run(store, "abcd2")["id"] == "abcd2222-y"
        assert [r.id for r in list_runs(store, RunQuery(limit=2))] == ["abcd2222-y", "abcd1111-x"]
    finally:
        store.close()


def test_run_never_imports_the_read_library(storage: Path) -> None:
    code = ("import sys\nfrom stepflow.cli import main\nstatus = main(['run', '-o', 'quiet', '--', 'true'])\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('stepflow.history', 'stepflow.cli.report',"
            " 'stepflow.store.sqlite.watch')))\nprint(status, loaded)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "0 []", done.stderr

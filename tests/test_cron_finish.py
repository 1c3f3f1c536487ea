"""CronRun end to end, as the run will call it: real runs recorded by the real CLI, a real store,
real hooks, a real HTTP server on 127.0.0.1, a real lock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepflow import history
from stepflow.config import load_settings
from stepflow.cron.finish import CronRun
from stepflow.cron.lock import LockBusy
from stepflow.cron.settings import cron_options
from stepflow.store import open_store
from tests.conftest import StepflowRunner
from tests.cron_http import UUID, Server, serving


@pytest.fixture
def server() -> Iterator[Server]:
    with serving() as state:
        yield state


def record(stepflow: StepflowRunner, storage: Path, code: int) -> dict[str, Any]:
    """A real run of job `nightly` exiting `code`, as `show --json` gives it."""
    stepflow("run", "--name", "nightly", "--", "sh", "-c", f"echo STEP_START:work; echo output of {code}; exit {code}")
    store = open_store(load_settings(storage=storage))
    try:
        run = store.find_runs()[0]
        return history.run_detail(run, store.steps(run.id), store.artifacts(run.id))
    finally:
        store.close()


def finish(tmp_path: Path, storage: Path, run: dict[str, Any], env: dict[str, str]) -> tuple[CronRun, list[str]]:
    cron = CronRun(cron_options(env), run_id=run["id"], run_name=run["name"], lock_dir=storage / "locks")
    cron.start()
    store = open_store(load_settings(storage=storage))
    try:
        return cron, cron.finish(run, store=store, env={"PATH": os.environ["PATH"]})
    finally:
        store.close()


def test_failures_then_a_streak_alert_then_recovery(stepflow: StepflowRunner, storage: Path, tmp_path: Path,
                                                    server: Server) -> None:
    log = tmp_path / "hooks.log"
    env = {
        "STEPFLOW_ON_FAILURE": f'echo "failure $STEPFLOW_STREAK $STEPFLOW_FAILED_STEP" >> {log}',
        "STEPFLOW_ON_STREAK": f'3 echo "streak $STEPFLOW_STREAK" >> {log}',
        "STEPFLOW_ON_RECOVER": f'echo "recover $STEPFLOW_RUN_STATUS" >> {log}',
        "STEPFLOW_PING_URL": server.url, "STEPFLOW_PROM_TEXTFILE": str(tmp_path),
        "STEPFLOW_LOCK": "nightly",
    }
    runs = []
    for code in (1, 1, 1, 1, 0):
        run = record(stepflow, storage, code)
        runs.append(run)
        cron, warnings = finish(tmp_path, storage, run, env)
        assert warnings == []
    assert log.read_text().splitlines() == [
        "failure 1 work", "failure 2 work", "failure 3 work", "streak 3", "failure 4 work", "recover completed"]
    paths = [p for _, p, _ in server.seen]
    assert paths[:2] == [f"/{UUID}/start?rid={runs[0]['id']}", f"/{UUID}/1?rid={runs[0]['id']}"]
    assert paths[-1] == f"/{UUID}/0?rid={runs[-1]['id']}"
    assert server.seen[1][2].endswith(b"output of 1\n")  # the log tail is the body
    prom = (tmp_path / "stepflow.prom").read_text()
    assert 'stepflow_consecutive_failures{job="nightly"} 0' in prom and 'stepflow_runs_total{job="nightly"} 5' in prom


def test_a_skipped_run_pings_log_and_runs_no_hook(storage: Path, tmp_path: Path, server: Server) -> None:
    log = tmp_path / "hooks.log"
    env = {"STEPFLOW_ON_FINISH": f"echo finish >> {log}", "STEPFLOW_PING_URL": server.url, "STEPFLOW_LOCK": "j"}
    holder = CronRun(cron_options(env), run_id="run-1", run_name="j", lock_dir=storage / "locks")
    holder.start()
    second = CronRun(cron_options(env), run_id="run-2", run_name="j", lock_dir=storage / "locks")
    with pytest.raises(LockBusy) as caught:
        second.start()
    skipped = {"id": "run-2", "name": "j", "status": "skipped", "exit_code": 0, "error_message": str(caught.value)}
    store = open_store(load_settings(storage=storage))
    try:
        assert second.finish(skipped, store=store, env={}) == []
    finally:
        store.close()
        holder.release()
    assert not log.exists()
    assert server.seen[-1][1] == f"/{UUID}/log?rid=run-2"
    assert server.seen[-1][2].startswith(b"skipped: lock 'j' is held by run run-1 (pid ")
    assert [p for _, p, _ in server.seen].count(f"/{UUID}/start?rid=run-2") == 0


def test_a_failing_store_and_hook_are_warnings(stepflow: StepflowRunner, storage: Path, tmp_path: Path) -> None:
    run = record(stepflow, storage, 2)
    env = {"STEPFLOW_ON_FAILURE": "exit 9", "STEPFLOW_PROM_TEXTFILE": str(tmp_path / "missing")}
    cron = CronRun(cron_options(env), run_id=run["id"], run_name=run["name"], lock_dir=storage / "locks")
    store = open_store(load_settings(storage=storage))
    store.close()  # every read now fails
    warnings = cron.finish(run, store=store, env={"PATH": os.environ["PATH"]})
    assert [w.split(":")[0] for w in warnings] == [
        "cannot read the run's output for hooks and pings", f"--prom-textfile {tmp_path / 'missing'}",
        "cannot read the job's earlier runs for --on-streak/--on-recover", "on-failure hook 'exit 9' exited 9"]

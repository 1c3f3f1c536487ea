"""Hooks run by /bin/sh for real: the run on stdin, STEPFLOW_* variables, failures as warnings,
timeouts that end the hook's whole process group; and the log tail they get from a real store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stepflow.config import load_settings
from stepflow.cron import hooks
from stepflow.cron.hooks import HookResult, hook_variables, run_hook
from stepflow.cron.tail import bounded_tail, log_tail
from stepflow.store import open_store
from tests.conftest import StepflowRunner, wait_for

RUN = {
    "id": "3f2a9c1e-0000-4000-8000-000000000001", "name": "backup-db", "status": "failed", "exit_code": 3,
    "duration_s": 12.5, "steps": [{"name": "dump", "status": "completed"}, {"name": "upload", "status": "failed"}],
}


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_hook_gets_the_run_on_stdin_and_as_variables(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_hook(f"cat > {out}.json; env > {out}.env", RUN, env={"PATH": os.environ["PATH"], "KEEP": "1"},
                      timeout=60, streak=4, log_tail="line 1\nline 2\n", which="on-failure")
    assert result == HookResult(result.command, 0, result.seconds)
    assert json.loads((tmp_path / "out.json").read_text()) == RUN
    env = dict(line.split("=", 1) for line in (tmp_path / "out.env").read_text().split("\n") if "=" in line
               and not line.startswith(("line", " ")))
    assert env["KEEP"] == "1"
    assert {k: env.get(k) for k in ("STEPFLOW_RUN_ID", "STEPFLOW_RUN_NAME", "STEPFLOW_RUN_STATUS", "STEPFLOW_EXIT_CODE",
                                    "STEPFLOW_DURATION_S", "STEPFLOW_FAILED_STEP", "STEPFLOW_STREAK",
                                    "STEPFLOW_HOOK")} == {
        "STEPFLOW_RUN_ID": RUN["id"], "STEPFLOW_RUN_NAME": "backup-db", "STEPFLOW_RUN_STATUS": "failed",
        "STEPFLOW_EXIT_CODE": "3", "STEPFLOW_DURATION_S": "12.500", "STEPFLOW_FAILED_STEP": "upload",
        "STEPFLOW_STREAK": "4", "STEPFLOW_HOOK": "on-failure"}
    assert "STEPFLOW_LOG_TAIL=line 1\nline 2\n" in (tmp_path / "out.env").read_text()


@pytest.mark.parametrize(("command", "exit_code", "warning"), [
    ("exit 3", 3, "on-failure hook 'exit 3' exited 3"),
    ("no-such-command-here", 127, "on-failure hook 'no-such-command-here' exited 127 (command not found?)"),
    ("kill -9 $$", -9, "on-failure hook 'kill -9 $$' was killed by signal 9"),
])
def test_a_failing_hook_is_a_warning_never_an_exception(command: str, exit_code: int, warning: str) -> None:
    result = run_hook(command, RUN, env={"PATH": os.environ["PATH"]}, timeout=60, which="on-failure")
    assert (result.exit_code, result.warning, result.timed_out) == (exit_code, warning, False)


def test_a_hook_that_cannot_start_is_a_warning(tmp_path: Path) -> None:
    result = run_hook("true", RUN, env={}, timeout=60, cwd=str(tmp_path / "missing"))
    assert result.exit_code is None and result.warning is not None
    assert result.warning.startswith("hook 'true' did not start: ")


def test_a_timeout_ends_the_hooks_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    result = run_hook(f"sleep 1000 & echo $! > {pid_file}; wait", RUN, env={"PATH": os.environ["PATH"]},
                      timeout=5, which="on-finish")  # 5 s: time enough for sh to start sleep on a loaded machine
    assert result.timed_out and result.exit_code is None
    assert result.warning == f"on-finish hook {result.command!r} timed out after 5 s and was stopped"
    grandchild = int(pid_file.read_text())
    assert wait_for(lambda: gone(grandchild), timeout=60)


def test_a_hook_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    result = run_hook(f"trap '' TERM; touch {ready}; while :; do sleep 1; done", RUN,
                      env={"PATH": os.environ["PATH"]}, timeout=5, kill_grace=0.2)
    assert result.timed_out and ready.exists()


def test_a_hook_that_never_reads_a_huge_run_does_not_block() -> None:
    big = {**RUN, "metadata": {"blob": "x" * 2_000_000}}
    assert run_hook("exit 0", big, env={}, timeout=60).warning is None


def test_variables_of_a_run_without_values() -> None:
    values = hook_variables({"id": "r", "status": "completed"})
    assert values[hooks.EXIT_CODE] == "" and values[hooks.DURATION_S] == "" and values[hooks.FAILED_STEP] == ""
    assert set(values) == set(hooks.VARIABLES)


def test_the_tail_variable_is_bounded_and_has_no_nul() -> None:
    values = hook_variables(RUN, log_tail="a\0b" + "y" * 20_000)
    assert len(values[hooks.LOG_TAIL]) == hooks.MAX_TAIL_CHARS and "\0" not in values[hooks.LOG_TAIL]


def test_bounded_tail_keeps_the_end_from_a_line_start() -> None:
    data = b"".join(b"line %04d\n" % i for i in range(3000))
    tail = bounded_tail(data, max_bytes=100)
    assert len(tail) <= 100 and tail.startswith(b"line ") and tail.endswith(b"line 2999\n")
    assert bounded_tail(b"short", max_bytes=100) == b"short"
    assert bounded_tail(b"x" * 500, max_bytes=100) == b"x" * 100  # no line start: the bytes as they are
    assert bounded_tail(b"token=hunter22\n", mask=lambda d: d.replace(b"hunter22", b"***")) == b"token=***\n"


def test_log_tail_from_a_real_run(stepflow: StepflowRunner, storage: Path) -> None:
    script = "for i in $(seq 1 300); do echo line $i; done; echo secret-value-1234"
    done = stepflow("run", "--mask", "secret-value-1234", "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    store = open_store(load_settings(storage=storage))
    try:
        run = store.find_runs()[0]
        tail = log_tail(store, run.id, run.line_count, lines=5)
        assert tail == b"line 297\nline 298\nline 299\nline 300\n***\n"
        assert log_tail(store, run.id, run.line_count, lines=1000, max_bytes=30) == b"line 299\nline 300\n***\n"
    finally:
        store.close()


"""The cron options through the real `stepflow run` (issue 15): real runs overlapping on a real
flock, real signals, real hooks, a real HTTP server on 127.0.0.1, a real textfile."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepflow.cli.run_flags import RUN_FLAGS, parse_run
from stepflow.cron import settings as cs
from stepflow.cron.lock import lock_path, read_holder
from stepflow.run.cron import FLAG_DESTS
from tests.conftest import StepflowRunner, wait_for
from tests.cron_http import UUID, Server, serving

GATE_WAIT = "while [ ! -e {gate} ]; do sleep 0.05; done"


@pytest.fixture
def server() -> Iterator[Server]:
    with serving() as state:
        yield state


def show(stepflow: StepflowRunner, ref: str = "last") -> dict[str, Any]:
    result = stepflow("show", ref, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def runs(stepflow: StepflowRunner) -> list[dict[str, Any]]:
    return json.loads(stepflow("ls", "--json").stdout)


def start_holder(storage: Path, gate: Path, *args: str, name: str = "job") -> subprocess.Popen[bytes]:
    """A real `stepflow run` holding lock `name` until `gate` exists; returns once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stepflow", "run", "-n", name, *args, "--", "sh", "-c", GATE_WAIT.format(gate=gate)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    path = lock_path(storage / "locks", name)

    def holding() -> bool:
        holder = read_holder(path)
        return holder is not None and holder.pid == proc.pid and holder.command_pgid is not None

    assert wait_for(holding, timeout=30), "the first run never took the lock"
    return proc


def test_a_run_finding_the_lock_held_is_recorded_skipped_and_exits_0(stepflow: StepflowRunner, storage: Path,
                                                                     tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    holder = start_holder(storage, gate, "--on-overlap", "skip")
    try:
        second = stepflow("run", "-n", "job", "--on-overlap", "skip", "--", "sh", "-c", f"touch {tmp_path}/ran")
        assert second.returncode == 0
        assert not (tmp_path / "ran").exists()  # the command was not run
        skipped = show(stepflow, "last")
        assert skipped["status"] == "skipped" and skipped["exit_code"] is None
        first_id = runs(stepflow)[1]["id"]
        assert f"lock 'job' is held by run {first_id[:8]} (pid {holder.pid}" in skipped["error_message"]
        assert skipped["metadata"]["lock_holder"]["run_id"] == first_id
        assert b"skipped: lock 'job' is held by" in second.stderr
        quiet = stepflow("run", "-o", "quiet", "-n", "job", "--lock", "job", "--", "true")
        assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, b"", b"")  # cron mails nothing
        assert [r["id"] for r in json.loads(stepflow("ls", "--status", "skipped", "--json").stdout)][1:] == [
            skipped["id"]]
    finally:
        gate.touch()
        assert holder.wait(timeout=60) == 0
    assert runs(stepflow)[-1]["status"] == "completed"  # the holder, unharmed


def test_wait_runs_after_the_holder_and_a_bound_that_expires_skips(stepflow: StepflowRunner, storage: Path,
                                                                   tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    holder = start_holder(storage, gate, "--lock", "job")
    try:
        bounded = stepflow("run", "-n", "job", "--on-overlap", "wait=0.3", "--", "true")
        assert bounded.returncode == 0
        assert "was still held after waiting" in show(stepflow)["error_message"]
        waiter = subprocess.Popen([sys.executable, "-m", "stepflow", "run", "-n", "job", "--on-overlap", "wait",
                                   "--", "true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        gate.touch()
        assert holder.wait(timeout=60) == 0
        assert waiter.wait(timeout=60) == 0
    finally:
        gate.touch()
    newest, first = runs(stepflow)[0], runs(stepflow)[-1]
    assert newest["status"] == "completed" and first["status"] == "completed"
    assert newest["started_at"] >= first["completed_at"]  # it ran once the holder was done


def test_kill_stops_the_holder_which_ends_cancelled(stepflow: StepflowRunner, storage: Path, tmp_path: Path) -> None:
    gate = tmp_path / "never"
    holder = start_holder(storage, gate, "--on-overlap", "kill", "--retry", "2")
    taker = stepflow("run", "-n", "job", "--on-overlap", "kill=20s", "--", "true")
    assert taker.returncode == 0
    assert holder.wait(timeout=60) == 128 + signal.SIGTERM
    first = runs(stepflow)[-1]
    assert first["status"] == "cancelled" and first["exit_code"] == 143
    assert len(show(stepflow, first["id"])["metadata"]["attempts"]) == 1  # a run that was stopped is not retried
    assert runs(stepflow)[0]["status"] == "completed"


def test_a_holder_killed_9_frees_the_lock(stepflow: StepflowRunner, storage: Path, tmp_path: Path) -> None:
    holder = start_holder(storage, tmp_path / "never", "--lock", "job")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    after = stepflow("run", "-n", "job", "--lock", "job", "--", "sh", "-c", "echo took it")
    assert after.returncode == 0
    assert show(stepflow)["status"] == "completed"


FLAKY = 'n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo STEP_START:try; echo "attempt $n"; [ $n -ge 3 ]'


def test_a_flaky_command_retried_is_one_run_of_three_attempts(stepflow: StepflowRunner, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    result = stepflow("run", "-n", "flaky", "--retry", "3", "--retry-delay", "0.1s", "--",
                      "sh", "-c", FLAKY.format(c=counter))
    assert result.returncode == 0
    assert len(runs(stepflow)) == 1
    run = show(stepflow)
    assert run["status"] == "completed" and run["exit_code"] == 0
    assert [a["exit_code"] for a in run["metadata"]["attempts"]] == [1, 1, 0]
    assert [s["status"] for s in run["steps"]] == ["failed", "failed", "completed"]
    assert run["steps"][0]["error_message"] == "attempt 1 of 4 failed (exit 1)"
    assert "attempt 2 of 4 failed (exit 1); trying again in 0.1 s" in run["warnings"]
    text = stepflow("show", "last").stdout.decode()
    assert "attempts   3: exit 1 (" in text
    logs = stepflow("logs", "last").stdout.decode()
    assert [line for line in logs.splitlines() if line.startswith("attempt")] == ["attempt 1", "attempt 2", "attempt 3"]


def test_retry_on_leaves_other_statuses_alone_and_the_last_attempt_is_the_runs(stepflow: StepflowRunner) -> None:
    assert stepflow("run", "--retry", "3", "--retry-on", "75", "--", "sh", "-c", "exit 1").returncode == 1
    assert len(show(stepflow)["metadata"]["attempts"]) == 1
    result = stepflow("run", "--retry", "1", "--timeout", "0.5", "--kill-grace", "1", "--", "sleep", "30")
    assert result.returncode == 124
    run = show(stepflow)
    assert run["status"] == "timed_out"  # the timeout covers each attempt; the last one's is the run's
    assert [a["exit_code"] for a in run["metadata"]["attempts"]] == [124, 124]


def test_hooks_get_the_run_as_json_and_stepflow_variables(stepflow: StepflowRunner, tmp_path: Path) -> None:
    out = tmp_path / "hook"
    hook = f"cat > {out}.json; env > {out}.env"
    result = stepflow("run", "-n", "backup", "--on-failure", hook, "--on-success", f"touch {tmp_path}/success",
                      "--on-finish", f"echo $STEPFLOW_HOOK >> {tmp_path}/finish", "--",
                      "sh", "-c", "echo STEP_START:dump; echo disk full; exit 3")
    assert result.returncode == 3
    run = show(stepflow)
    given = json.loads(out.with_suffix(".json").read_text())
    assert given == run  # the show --json dict
    env = dict(line.split("=", 1) for line in out.with_suffix(".env").read_text().splitlines() if "=" in line)
    assert env["STEPFLOW_RUN_ID"] == run["id"] and env["STEPFLOW_RUN_NAME"] == "backup"
    assert (env["STEPFLOW_RUN_STATUS"], env["STEPFLOW_EXIT_CODE"], env["STEPFLOW_FAILED_STEP"]) == ("failed", "3", "dump")
    assert env["STEPFLOW_HOOK"] == "on-failure" and env["STEPFLOW_STREAK"] == "1"
    assert float(env["STEPFLOW_DURATION_S"]) >= 0
    assert not (tmp_path / "success").exists()
    assert (tmp_path / "finish").read_text() == "on-finish\n"
    assert stepflow("run", "--on-success", f"touch {tmp_path}/success", "--", "true").returncode == 0
    assert (tmp_path / "success").exists()


def test_a_failing_or_hanging_hook_is_a_warning_never_another_exit_status(stepflow: StepflowRunner) -> None:
    failing = stepflow("run", "--on-success", "exit 5", "--", "true")
    assert failing.returncode == 0
    assert b"stepflow: warning: on-success hook 'exit 5' exited 5\n" in failing.stderr
    assert "on-success hook 'exit 5' exited 5" in show(stepflow)["warnings"]
    hanging = stepflow("run", "--hook-timeout", "0.5", "--on-failure", "sleep 60", "--", "sh", "-c", "exit 4")
    assert hanging.returncode == 4
    assert "on-failure hook 'sleep 60' timed out after 0.5 s and was stopped" in show(stepflow)["warnings"]


def test_on_streak_fires_once_and_on_recover_after_it(stepflow: StepflowRunner, tmp_path: Path) -> None:
    log = tmp_path / "alerts"
    hooks = ("--on-streak", f'2:echo "streak $STEPFLOW_STREAK" >> {log}', "--on-recover", f"echo recover >> {log}")
    for code in (1, 1, 1, 0, 0):
        assert stepflow("run", "-n", "probe", *hooks, "--", "sh", "-c", f"exit {code}").returncode == code
    assert log.read_text().splitlines() == ["streak 2", "recover"]


def test_pings_start_and_exit_status_with_a_masked_tail(stepflow: StepflowRunner, server: Server) -> None:
    ok = stepflow("run", "--ping", server.url, "--mask", "s3cret-value", "--", "sh", "-c", "echo token s3cret-value")
    assert ok.returncode == 0
    run_id = show(stepflow)["id"]
    assert [(m, p) for m, p, _ in server.seen] == [("POST", f"/{UUID}/start?rid={run_id}"),
                                                   ("POST", f"/{UUID}/0?rid={run_id}")]
    body = server.seen[1][2]
    assert b"token ***" in body and b"s3cret" not in body
    server.seen.clear()
    assert stepflow("run", "--ping", server.url, "--", "sh", "-c", "exit 3").returncode == 3
    assert [p.split("?")[0] for _, p, _ in server.seen] == [f"/{UUID}/start", f"/{UUID}/3"]


def test_a_ping_server_answering_500_is_a_warning(stepflow: StepflowRunner, server: Server) -> None:
    server.statuses = [500] * 20
    result = stepflow("run", "--ping", server.url, "--", "true")
    assert result.returncode == 0
    assert b"stepflow: warning: ping http://127.0.0.1:" in result.stderr
    assert any("HTTP 500" in w for w in show(stepflow)["warnings"])


def test_prom_textfile_after_each_run(stepflow: StepflowRunner, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    metrics = tmp_path / "prom"
    metrics.mkdir()
    for code in (0, 2):
        stepflow("run", "-n", "etl", "--prom-textfile", str(metrics), "--", "sh", "-c", f"exit {code}")
    text = (metrics / "stepflow.prom").read_text()
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in text_string_to_metric_families(text) for s in family.samples}
    assert found[("stepflow_runs_total", (("job", "etl"),))] == 2
    assert found[("stepflow_consecutive_failures", (("job", "etl"),))] == 1
    assert found[("stepflow_last_exit_code", (("job", "etl"),))] == 2
    assert found[("stepflow_last_status", (("job", "etl"), ("status", "failed")))] == 1
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_settings_from_a_cron_like_environment(storage: Path, tmp_path: Path, server: Server) -> None:
    """env -i with a minimal PATH, no HOME, no TERM: what cron gives a job, plus the crontab's settings."""
    hook = tmp_path / "hook.json"
    base = {"PATH": "/usr/bin:/bin", "STEPFLOW_STORAGE_PATH": str(storage), "STEPFLOW_ON_OVERLAP": "skip",
            "STEPFLOW_RETRY": "1", "STEPFLOW_ON_FAILURE": f"cat > {hook}; env > {hook}.env", "STEPFLOW_PING_URL": server.url,
            "STEPFLOW_PROM_TEXTFILE": str(tmp_path), "STEPFLOW_ON_STREAK": "1 echo paged"}

    def cron(*command: str) -> subprocess.CompletedProcess[bytes]:
        argv = ["env", "-i", *(f"{k}={v}" for k, v in base.items()), sys.executable, "-m", "stepflow", "run", "-o",
                "quiet", "-n", "nightly", "--", *command]
        return subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)

    ok = cron("true")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, b"", b"")  # nothing for cron to mail
    failed = cron("sh", "-c", "echo STEP_START:load; echo bad row; exit 7")
    assert failed.returncode == 7
    assert b"bad row" in failed.stdout and b"paged" in failed.stdout  # the mail: the failure, the hook's words
    given = json.loads(hook.read_text())
    assert given["status"] == "failed" and len(given["metadata"]["attempts"]) == 2
    hook_env = Path(f"{hook}.env").read_text()
    assert "STEPFLOW_RUN_STATUS=failed" in hook_env and "STEPFLOW_RETRY=" not in hook_env  # no hook loops
    assert (tmp_path / "stepflow.prom").exists()
    assert [p.split("?")[0].rsplit("/", 1)[-1] for _, p, _ in server.seen] == ["start", "0", "start", "7"]


@pytest.mark.parametrize("args, message", [
    (["--on-overlap", "maybe"], "--on-overlap 'maybe' is not skip, wait, wait=BOUND, kill or kill=GRACE"),
    (["--retry", "many"], "--retry 'many' is not a whole number from 0 to 100"),
    (["--retry-delay", "soon"], "--retry-delay 'soon' is not a duration"),
    (["--on-streak", "page-me"], "--on-streak='page-me' is not a count from 1 and a command"),
    (["--hook-timeout", "x"], "--hook-timeout 'x' is not a duration"),
])
def test_bad_cron_values_are_usage_errors_and_nothing_runs(stepflow: StepflowRunner, tmp_path: Path,
                                                           args: list[str], message: str) -> None:
    result = stepflow("run", *args, "--", "touch", str(tmp_path / "ran"))
    assert result.returncode == 2
    assert result.stderr.decode().startswith(f"stepflow: error: {message}")
    assert not (tmp_path / "ran").exists()


def test_both_parsers_know_the_cron_flags(stepflow: StepflowRunner, tmp_path: Path) -> None:
    parsed = parse_run(["run", "--lock", "j", "--on-overlap=wait=10m", "--on-streak", "3:page", "--ping", "http://x",
                        "--", "true"])
    assert parsed is not None
    assert {k: v for k, v in parsed[1].items() if v is not None and k in FLAG_DESTS} == {
        "lock": "j", "overlap": "wait=10m", "on_streak": "3:page", "ping_url": "http://x"}
    assert {f.dest for f in RUN_FLAGS} >= set(FLAG_DESTS)
    assert set(cs.NAMES) >= {cs.LOCK, cs.ON_STREAK}
    # -nNAME is left to typer: the same flags, the same run
    result = stepflow("run", "-njob", "--retry", "1", "--on-failure", f"touch {tmp_path}/hooked", "--",
                      "sh", "-c", "exit 2")
    assert result.returncode == 2
    assert len(show(stepflow)["metadata"]["attempts"]) == 2 and (tmp_path / "hooked").exists()
    assert b"--on-overlap" in stepflow("run", "--help").stdout


def test_a_lock_that_cannot_be_opened_is_an_error_and_nothing_runs(stepflow: StepflowRunner, storage: Path,
                                                                   tmp_path: Path) -> None:
    storage.mkdir(parents=True)
    (storage / "locks").write_text("not a folder")
    result = stepflow("run", "--lock", "job", "--", "touch", str(tmp_path / "ran"))
    assert result.returncode == 1
    assert result.stderr.decode().startswith("stepflow: error: cannot open the lock file")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "ran").exists()


def test_a_skipped_run_pings_log_and_runs_no_hook(stepflow: StepflowRunner, storage: Path, tmp_path: Path,
                                                  server: Server) -> None:
    gate = tmp_path / "gate"
    holder = start_holder(storage, gate, "--lock", "job")
    try:
        result = stepflow("run", "-n", "job", "--lock", "job", "--ping", server.url, "--on-finish",
                          f"touch {tmp_path}/hooked", "--", "true")
        assert result.returncode == 0
    finally:
        gate.touch()
        holder.wait(timeout=60)
    assert [p.split("?")[0] for _, p, _ in server.seen] == [f"/{UUID}/log"]
    assert b"is held by run" in server.seen[0][2]
    assert not (tmp_path / "hooked").exists()

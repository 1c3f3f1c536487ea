"""Looking back: ls filters and ID prefixes on a store with many runs, show, logs, --follow, abandoned runs."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import unicodedata
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from stepflow import procs
from stepflow.config import load_settings
from stepflow.history import abandoned
from stepflow.store import open_store
from stepflow.store.base import NewRun, Run
from tests.conftest import StepflowRunner, py, query, wait_for
from tests.test_live import ANSI, run_in_terminal

NOW = time.time()
NAMES = ["nightly-backup", "deploy-web", "deploy-api", "report"]
STATUSES = ["completed", "completed", "failed", "cancelled", "timed_out"]
TAGS: list[Any] = [["prod"], ["staging", "nightly"], [], "not json ["]
SPECIAL = ["abcd1111-0000-4000-8000-000000000001", "abcd2222-0000-4000-8000-000000000002",
           "abce0000-0000-4000-8000-000000000003"]
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@pytest.fixture
def many_runs(storage: Path) -> list[dict[str, Any]]:
    """1,003 runs over a week, written in one transaction through the store API."""
    global NOW
    NOW = time.time()  # relative times ("1m ago") are checked: count from now, not from collection
    rng = random.Random(3)
    specs = []
    for i in range(1000):
        created = NOW - i * 600 - 300  # every 10 minutes, never on a --since boundary
        specs.append({
            "id": SPECIAL[i] if i < 3 else str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "name": NAMES[i % 4], "status": STATUSES[i % 5], "tags": TAGS[i % 3] if i % 50 != 7 else TAGS[3],
            "created_ts": created, "created_at": iso(created), "started_at": iso(created),
            "completed_at": iso(created + 5 + i % 7), "command": f"job {i}", "exit_code": 0 if i % 5 < 2 else 1,
            "total_steps": 3, "completed_steps": 3 if i % 5 < 2 else 1,
        })
    for n in range(3):  # running, and their stepflow process (this one) is alive
        created = NOW - 60 - n
        specs.append({"id": f"eeee000{n}-0000-4000-8000-000000000000", "name": "live-job", "status": "running",
                      "tags": [], "created_ts": created, "created_at": iso(created), "started_at": iso(created),
                      "command": "sleep", "pid": os.getpid(), "pid_started": procs.start_time(os.getpid()),
                      "host": os.uname().nodename, "total_steps": 1, "completed_steps": 0})
    store = open_store(load_settings())
    store.write([NewRun.of(dict(s)) for s in specs])
    store.close()
    assert not any(s["id"].startswith("ffff0000") for s in specs)
    return sorted(specs, key=lambda s: -s["created_ts"])


def ls_json(stepflow: StepflowRunner, *args: str) -> list[dict[str, Any]]:
    result = stepflow("ls", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_ls_filters(stepflow: StepflowRunner, many_runs: list[dict[str, Any]]) -> None:
    everything = ls_json(stepflow, "--limit", "5000")
    assert [r["id"] for r in everything] == [s["id"] for s in many_runs]  # newest first, none lost
    assert set(everything[0]) >= {"id", "name", "command", "status", "exit_code", "created_at", "started_at",
                                  "completed_at", "duration_s", "tags", "total_steps", "completed_steps"}

    failed = ls_json(stepflow, "--status", "failed", "--limit", "5000")
    assert [r["id"] for r in failed] == [s["id"] for s in many_runs if s["status"] == "failed"]

    picked = ls_json(stepflow, "--name", "deploy-*", "--tag", "prod", "--since", "2d", "--limit", "5000")
    expected = [s["id"] for s in many_runs if s["name"].startswith("deploy-") and s["tags"] == ["prod"]
                and s["created_ts"] >= NOW - 2 * 86400]
    assert expected and [r["id"] for r in picked] == expected

    since_date = datetime.fromtimestamp(NOW - 86400 - 100).astimezone().isoformat()
    recent = ls_json(stepflow, "--since", since_date, "--limit", "5000")
    assert [r["id"] for r in recent] == [s["id"] for s in many_runs if s["created_ts"] >= NOW - 86400 - 100]

    assert [r["id"] for r in ls_json(stepflow, "--limit", "5")] == [s["id"] for s in many_runs[:5]]
    running = ls_json(stepflow, "--status", "running")
    assert sorted(r["id"] for r in running) == [f"eeee000{n}-0000-4000-8000-000000000000" for n in range(3)]
    assert running[0]["duration_s"] is None and ISO_WITH_OFFSET.match(running[0]["created_at"])

    bad = stepflow("ls", "--since", "yesterday")
    assert bad.returncode == 2
    assert bad.stderr == b"stepflow: error: --since 'yesterday' is not a duration (90, 90s, 10m, 1h30m, 2d) or a date (2025-08-01)\n"


def test_ls_prints_plain_aligned_text_when_piped(stepflow: StepflowRunner, many_runs: list[dict[str, Any]]) -> None:
    out = stepflow("ls", "--limit", "5").stdout.decode()
    assert "\x1b" not in out
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "NAME", "STATUS", "STEPS", "DURATION", "STARTED", "TAGS"]  # tags: some have
    assert len(rows) == 5 and rows[0].startswith("eeee0000  live-job        running")
    assert re.match(r"abcd1111  nightly-backup  completed    3/3      5\.0s  \S+ \S+  prod$", rows[3])
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", rows[0])  # absolute local time off a terminal


def test_ls_in_a_terminal_shows_relative_times_and_colour(many_runs: list[dict[str, Any]]) -> None:
    code, out = run_in_terminal(["ls", "--limit", "4"])
    assert code == 0
    text = ANSI.sub("", out.decode())
    assert re.search(r"live-job\s+running\s+0/1\s+1m\d\ds\s+1m ago", text), text
    assert re.search(r"abcd1111\s+nightly-backup\s+completed\s+3/3\s+5\.0s\s+5m ago\s+prod", text), text
    assert b"\x1b[32mcompleted" in out  # status in colour


@pytest.mark.parametrize("ref, status, message", [
    ("abcd", 1, "run id 'abcd' is ambiguous: abcd1111-000, abcd2222-000; give more characters"),
    ("abc", 2, "run id 'abc' is too short; give at least 4 characters"),
    ("ffff0000", 1, "no run with id 'ffff0000'; see \"stepflow ls\""),
])
def test_run_ids_that_do_not_name_one_run(stepflow: StepflowRunner, many_runs: list[dict[str, Any]], ref: str,
                                          status: int, message: str) -> None:
    for command in ("show", "logs"):
        result = stepflow(command, ref)
        assert (result.returncode, result.stderr.decode()) == (status, f"stepflow: error: {message}\n")


def test_run_ids_full_prefix_and_last(stepflow: StepflowRunner, many_runs: list[dict[str, Any]]) -> None:
    def shown(ref: str) -> str:
        result = stepflow("show", ref, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["id"]  # type: ignore[no-any-return]

    assert shown("abcd1") == SPECIAL[0]
    assert shown("ABCE") == SPECIAL[2]
    assert shown(many_runs[500]["id"]) == many_runs[500]["id"]
    assert shown(many_runs[500]["id"][:8]) == many_runs[500]["id"]
    assert shown("last") == many_runs[0]["id"]


def test_no_store_yet(stepflow: StepflowRunner, storage: Path) -> None:
    # ls on a fresh machine: no runs, nothing to say, success (`git log` in a new repository)
    empty = stepflow("ls")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, b"", b"")
    listed = stepflow("ls", "--json")
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, b"[]\n", b"")
    assert not storage.exists()  # looking created nothing
    result = stepflow("show")
    assert result.returncode == 1
    assert result.stderr.decode() == (f"stepflow: error: no store at {storage}/database/stepflow.db;"
                                      " record a run with \"stepflow run -- CMD\"\n")


# -- show and logs on a real run ---------------------------------------------------------------

JOB = r"""
import sys, time
print("META:owner:ops")
print("STEP_START:build[stop_on_error=true]")
print("compiling")
print("warn: \x1b]0;pwned\x07 deprecated", file=sys.stderr, flush=True)
time.sleep(0.3)  # two pipes: let stepflow read stderr before the next marker on stdout
print("STEP_COMPLETE:build")
print("STEP_START:test")
print("test 1 ok")
print("test 2 FAILED")
print("STEP_ERROR:1 test failed", flush=True)
sys.exit(1)
"""


@pytest.fixture
def job(stepflow: StepflowRunner) -> str:
    result = stepflow("run", "--output", "plain", "-n", "ci \x1b[2Jjob", "-t", "nightly", "--", *py(JOB))
    assert result.returncode == 1, result.stderr
    return json.loads(stepflow("show", "last", "--json").stdout)["id"]  # type: ignore[no-any-return]


def test_show_report_and_json(stepflow: StepflowRunner, job: str) -> None:
    d = json.loads(stepflow("show", job[:6], "--json").stdout)
    assert (d["status"], d["exit_code"], d["name"], d["tags"], d["metadata"]) == (
        "failed", 1, "ci \x1b[2Jjob", ["nightly"], {"owner": "ops"})
    assert all(ISO_WITH_OFFSET.match(d[k]) for k in ("created_at", "started_at", "completed_at"))
    assert [(s["index"], s["name"], s["status"], s["error_message"], s["stop_on_error"]) for s in d["steps"]] == [
        (0, "build", "completed", None, True), (1, "test", "failed", "1 test failed", False)]
    assert set(d["steps"][0]) >= {"index", "name", "status", "started_at", "completed_at", "duration_s",
                                  "error_message", "stop_on_error", "metadata"}

    result = stepflow("show", job[:6])
    out = result.stdout.decode()
    assert result.returncode == 0 and "\x1b" not in out
    assert f"run {job}  ci \\x1b[2Jjob" in out
    assert "  status     failed  exit 1" in out and "  tags       nightly" in out and "  meta       owner=ops" in out
    assert re.search(r"  1\s+build\s+completed\s+\d+\.\ds.*stop_on_error", out)
    assert re.search(r"  2\s+test\s+failed\s+\d+\.\ds.*  1 test failed$", out, re.MULTILINE)
    assert "steps  1/2 completed" in out and f"stepflow logs {job[:8]}" in out


def test_logs_filters_and_escapes(stepflow: StepflowRunner, job: str) -> None:
    def logs(*args: str) -> list[str]:
        result = stepflow("logs", "last", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout.decode().splitlines()

    escaped = "warn: \\x1b]0;pwned\\x07 deprecated"
    assert logs() == ["compiling", escaped, "test 1 ok", "test 2 FAILED"]
    assert logs("--step", "build") == logs("--step", "1") == ["compiling", escaped]
    assert logs("--step", "2", "--stream", "stdout") == ["test 1 ok", "test 2 FAILED"]
    assert logs("--stream", "stderr") == [escaped]
    assert logs("--grep", "FAILED") == ["test 2 FAILED"]
    stamped = logs("--timestamps", "--step", "test")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d test 1 ok$", stamped[0])
    raw = stepflow("logs", "last", "--raw", "--stream", "stderr").stdout
    assert raw == b"warn: \x1b]0;pwned\x07 deprecated\n"
    missing = stepflow("logs", "last", "--step", "deploy")
    assert missing.returncode == 1
    assert missing.stderr.decode() == f"stepflow: error: run {job[:8]} has no step 'deploy'; steps: 'build', 'test'\n"


def test_logs_in_a_terminal_tell_stderr_apart_without_changing_it(job: str) -> None:
    code, out = run_in_terminal(["logs", "last"])
    assert code == 0
    assert b"\x1b[2;31mwarn: \\x1b]0;pwned\\x07 deprecated\x1b[0m" in out
    assert b"\r\ncompiling\r\n" in b"\r\n" + out
    code, out = run_in_terminal(["logs", "last", "--no-color"])
    assert b"\x1b[" not in out.replace(b"\x1b]0;pwned", b"")


# -- --follow ----------------------------------------------------------------------------------

SLOW = """
import sys, time
for i in range(12):
    if i % 6 == 0:
        print(f"STEP_START:part{i // 6}", flush=True)
    print(f"line {i}", file=sys.stderr if i == 7 else sys.stdout, flush=True)
    time.sleep(0.15)
"""


def start_run(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--output", "quiet", "--", *py(code)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def start_follow(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "stepflow", "logs", "last", "--follow", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def test_follow_tails_a_running_job_until_it_ends(db_path: Path) -> None:
    run = start_run(SLOW)
    follow = None
    try:
        assert wait_for(lambda: len(query(db_path, "SELECT 1 FROM logs")) > 0)
        follow = start_follow()
        out, err = follow.communicate(timeout=30)
        assert follow.returncode == 0, err
        assert query(db_path, "SELECT status FROM executions") == [("completed",)]  # it stopped at the end
        assert out.decode().splitlines() == [f"line {i}" for i in range(12)]
        assert re.fullmatch(rb"run [0-9a-f]{8} completed \(exit 0\)\n", err), err  # how it ended
    finally:
        for proc in (run, follow):
            if proc is not None and proc.poll() is None:
                proc.kill()
        run.wait()


def test_follow_ctrl_c_and_a_run_abandoned_by_kill_9(stepflow: StepflowRunner, db_path: Path) -> None:
    run = start_run("print('STEP_START:wait', flush=True); print('waiting', flush=True); import time; time.sleep(60)")
    kids: list[psutil.Process] = []
    try:
        assert wait_for(lambda: query(db_path, "SELECT count(*) FROM logs") == [(1,)])
        kids = psutil.Process(run.pid).children(recursive=True)
        first = start_follow("--step", "wait")
        assert first.stdout is not None and first.stdout.readline() == b"waiting\n"  # it has printed what there is
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=20)
        assert (first.returncode, out, err) == (130, b"", b"")  # Ctrl-C: quietly, 130

        second = start_follow()
        assert second.stdout is not None and second.stdout.readline() == b"waiting\n"
        os.kill(run.pid, signal.SIGKILL)  # stepflow dies; nothing will ever finish this run
        run.wait()
        out, err = second.communicate(timeout=20)
        assert (second.returncode, out) == (1, b"")  # it noticed and stopped: not a success
        assert re.fullmatch(rb"run [0-9a-f]{8} abandoned \(exit -\)\n", err), err
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for kid in kids:
            kid.kill()
    assert query(db_path, "SELECT status, error_message FROM executions") == [
        ("abandoned", "the stepflow process that ran it is gone")]
    assert [r["status"] for r in ls_json(stepflow)] == ["abandoned"]
    assert [r["status"] for r in ls_json(stepflow, "--status", "abandoned")] == ["abandoned"]
    assert ls_json(stepflow, "--status", "running") == []


# -- abandoned: the rules ----------------------------------------------------------------------


def run_row(**values: Any) -> Run:
    base: dict[str, Any] = {"id": "r1", "name": "n", "command": "c", "status": "running", "created_at": iso(NOW)}
    return Run(**{**base, **values})


def test_what_counts_as_abandoned() -> None:
    me, started = os.getpid(), procs.start_time(os.getpid())
    host = os.uname().nodename
    assert not abandoned.is_abandoned(run_row(pid=me, pid_started=started, host=host))
    assert abandoned.is_abandoned(run_row(pid=me, pid_started=(started or 0) - 1000, host=host))  # pid reused
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert abandoned.is_abandoned(run_row(pid=dead.pid, pid_started=started, host=host))
    # Not run by stepflow: an old server still writing beside stepflow finishes its own runs
    # (the ones it left running were marked by migrate).
    assert not abandoned.is_abandoned(run_row(pid=None))
    assert not abandoned.is_abandoned(run_row(pid=None, status="pending"))
    assert not abandoned.is_abandoned(run_row(pid=dead.pid, host="elsewhere"))  # not ours to judge
    assert not abandoned.is_abandoned(run_row(pid=None, status="completed"))


def gone_process() -> dict[str, object]:
    """The pid, start time and host of a stepflow process that has ended."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    return {"pid": dead.pid, "pid_started": 1.0, "host": os.uname().nodename}


def test_noticing_on_a_read_only_store_still_shows_abandoned(storage: Path) -> None:
    settings = load_settings()
    store = open_store(settings)
    store.write([NewRun.of({"id": "legacy-1", "name": "n", "command": "c", "status": "running",
                                       "created_at": "2025-08-02T13:40:07", "created_ts": NOW, **gone_process()})])
    store.close()
    reader = open_store(settings, readonly=True)
    try:
        (run,) = reader.find_runs()
        assert [r.id for r in abandoned.notice(reader, [run])] == ["legacy-1"]
        assert run.status == "abandoned"
    finally:
        reader.close()
    assert query(settings.database, "SELECT status FROM executions") == [("running",)]  # could not store it
    store = open_store(settings)
    try:
        assert abandoned.sweep(store) == {"legacy-1"}
        assert store.find_runs()[0].status == "abandoned"
        assert abandoned.sweep(store) == set()
    finally:
        store.close()


def test_a_legacy_store_full_of_running_rows_is_swept_in_one_go(storage: Path) -> None:
    store = open_store(load_settings())
    try:
        gone = gone_process()
        store.write([NewRun.of({"id": f"old-{i}", "name": "n", "command": "c", "status": "running",
                                           "created_at": "2025-08-02T13:40:07", "created_ts": NOW - i, **gone})
                     for i in range(1200)])
        assert len(abandoned.sweep(store)) == 1200
        assert {r.status for r in store.find_runs()} == {"abandoned"}
    finally:
        store.close()


def test_follow_waits_for_a_step_the_job_has_not_reached(db_path: Path) -> None:
    run = start_run(
        "import time\nprint('STEP_START:first', flush=True); print('early', flush=True); time.sleep(1.0)\n"
        "print('STEP_START:late', flush=True)\nfor i in range(3): print(f'late {i}', flush=True)\n"
    )
    follow = None
    try:
        assert wait_for(lambda: len(query(db_path, "SELECT 1 FROM logs")) > 0)
        follow = start_follow("--step", "late")
        out, err = follow.communicate(timeout=30)
        assert (follow.returncode, out.decode().splitlines()) == (0, ["late 0", "late 1", "late 2"])
        assert err.endswith(b" completed (exit 0)\n"), err
    finally:
        for proc in (run, follow):
            if proc is not None and proc.poll() is None:
                proc.kill()
        run.wait()


def test_ls_and_show_escape_every_stored_field(stepflow: StepflowRunner, storage: Path) -> None:
    store = open_store(load_settings())
    evil_id = "\x1b]0;X\x07\x1b[2J-evil-id"
    try:
        store.write([NewRun.of({"id": evil_id, "name": "数据同步", "command": "c",
                                           "status": "completed\x1b[31m", "exit_code": "1\x1b[5A",
                                           "created_at": "2025-08-02T13:40:07", "created_ts": NOW})])
    finally:
        store.close()
    listed, shown = stepflow("ls"), stepflow("show", evil_id)
    for out in (listed, shown):
        assert out.returncode == 0, out.stderr
        assert b"\x1b" not in out.stdout and b"\x07" not in out.stdout
    header, row = listed.stdout.decode().splitlines()
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in row[: row.index("completed")])
    assert columns == header.index("STATUS")  # 数据同步 takes 8 columns, not 4: STATUS stays aligned


def test_process_start_times_are_counted_from_boot_not_on_the_wall_clock() -> None:
    """A clock stepped by NTP must not make a live run look gone: nothing here reads the wall clock."""
    started = procs.start_time(os.getpid())
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert started is not None and 0 <= started <= uptime
    assert procs.is_alive(os.getpid(), started)

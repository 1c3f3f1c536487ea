"""`stepflow run` end to end: real children, real signals, a real SQLite store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, StepflowRunner, py, query, wait_for


def gone(pid: int) -> bool:
    """The process no longer runs: it does not exist or is a zombie nobody reaped yet."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def runs(db: Path) -> list[tuple[object, ...]]:
    return query(db, "SELECT status, exit_code, total_steps, completed_steps, error_message FROM executions")


def steps(db: Path) -> list[tuple[object, ...]]:
    return query(db, "SELECT name, status, error_message, stop_on_error FROM steps ORDER BY step_index")


def log_text(db: Path) -> list[bytes]:
    blocks = query(db, "SELECT data FROM logs ORDER BY first_line")
    return [line for (data,) in blocks for line in bytes(data).split(b"\n")]  # type: ignore[arg-type]


@pytest.mark.parametrize("code, status, exit_code", [
    ("pass", "completed", 0),
    ("raise SystemExit(3)", "failed", 3),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "failed", 137),
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", "failed", 143),
])
def test_exit_status_is_the_commands_own(stepflow: StepflowRunner, db_path: Path, code: str,
                                         status: str, exit_code: int) -> None:
    result = stepflow("run", "--", *py(code))
    assert result.returncode == exit_code
    assert runs(db_path) == [(status, exit_code, 0, 0, runs(db_path)[0][4])]


def test_example_deploy_is_recorded(stepflow: StepflowRunner, db_path: Path) -> None:
    result = stepflow("run", "--", "bash", str(EXAMPLES / "deploy.sh"))
    assert result.returncode == 0, result.stderr
    assert steps(db_path) == [
        ("env_check", "completed", None, 1),
        ("build", "completed", None, 0),
        ("lint", "failed", "lint found 2 problems (optional step, the run goes on)", 0),
        ("[beta] smoke test", "completed", None, 0),
        ("publish", "completed", None, 1),
    ]
    assert runs(db_path) == [("completed", 0, 5, 4, None)]
    shown = json.loads(stepflow("show", "last", "--json").stdout)
    assert [a["name"] for a in shown["artifacts"]] == ["report.html", "NOTES.txt"]
    assert all(Path(a["path"]).is_file() and len(a["sha256"]) == 64 for a in shown["artifacts"])
    assert shown["metadata"] == {"owner": "ops"}


def test_plain_output_passes_stdout_through_byte_for_byte(stepflow: StepflowRunner) -> None:
    payload = b"STEP_START:a\nhello \xff\x00 world\r\nno newline at end"
    code = f"import sys; sys.stdout.buffer.write({payload!r}); sys.stderr.write('err line\\n')"
    result = stepflow("run", "--output", "plain", "--", *py(code))
    assert result.stdout == payload
    assert b"err line\n" in result.stderr
    assert b"stepflow: step 1 'a' started" in result.stderr


def test_command_not_found_is_127_and_recorded(stepflow: StepflowRunner, db_path: Path) -> None:
    result = stepflow("run", "--", "no-such-command-xyz")
    assert result.returncode == 127
    assert result.stderr.decode().splitlines()[-1] == "stepflow: error: command not found: no-such-command-xyz"
    assert runs(db_path) == [("failed", 127, 0, 0, "command not found: no-such-command-xyz")]


def test_command_not_executable_is_126_and_recorded(stepflow: StepflowRunner, db_path: Path, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")
    script.chmod(0o644)
    result = stepflow("run", "--", str(script))
    assert result.returncode == 126
    assert f"stepflow: error: {script}: permission denied" in result.stderr.decode()
    assert runs(db_path)[0][:2] == ("failed", 126)


def test_timeout_is_124_and_kills_the_process_group(stepflow: StepflowRunner, db_path: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    result = stepflow("run", "--timeout", "0.5", "--kill-grace", "1", "--", "bash", "-c", script)
    assert result.returncode == 124
    assert runs(db_path)[0][:2] == ("timed_out", 124)
    assert gone(int(pidfile.read_text()))


def test_timeout_escalates_to_sigkill_after_the_grace(stepflow: StepflowRunner, db_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    started = time.monotonic()
    result = stepflow("run", "--timeout", "0.5", "--kill-grace", "0.5", "--", *py(code))
    assert result.returncode == 124
    assert time.monotonic() - started < 30  # not the child's 60 s: SIGKILL came
    assert runs(db_path)[0][0] == "timed_out"


def test_critical_step_failure_stops_a_sleeping_child(stepflow: StepflowRunner, db_path: Path) -> None:
    script = "echo 'STEP_START:deploy[stop_on_error=true]'; echo 'STEP_ERROR:boom'; sleep 60; echo never"
    started = time.monotonic()
    result = stepflow("run", "--kill-grace", "2", "--", "bash", "-c", script)
    assert time.monotonic() - started < 30
    assert result.returncode == 143  # the command's own status: it died of SIGTERM
    assert steps(db_path) == [("deploy", "failed", "boom", 1)]
    status, code, *_ , error = runs(db_path)[0]
    assert (status, code) == ("failed", 143)
    assert "critical step 'deploy' failed: boom" in str(error)
    assert b"never" not in result.stdout


def test_optional_step_failure_keeps_the_run_going(stepflow: StepflowRunner, db_path: Path) -> None:
    script = "echo STEP_START:lint; echo STEP_ERROR:meh; echo STEP_START:build; echo STEP_COMPLETE:build"
    assert stepflow("run", "--", "bash", "-c", script).returncode == 0
    assert [s[:2] for s in steps(db_path)] == [("lint", "failed"), ("build", "completed")]
    assert runs(db_path)[0][:2] == ("completed", 0)


@pytest.mark.parametrize("exit_code, step_status", [(0, "completed"), (5, "failed")])
def test_step_running_at_exit_follows_the_exit_status(stepflow: StepflowRunner, db_path: Path,
                                                      exit_code: int, step_status: str) -> None:
    stepflow("run", "--", "bash", "-c", f"echo STEP_START:last; exit {exit_code}")
    assert steps(db_path)[0][1] == step_status


def test_start_completes_the_running_step_and_mismatch_is_a_warning(stepflow: StepflowRunner, db_path: Path) -> None:
    script = "echo STEP_START:a; echo STEP_START:b; echo STEP_COMPLETE:zzz; echo STEP_COMPLETE:b"
    stepflow("run", "--", "bash", "-c", script)
    assert [s[:2] for s in steps(db_path)] == [("a", "completed"), ("b", "completed")]
    (warnings,) = query(db_path, "SELECT warnings FROM executions")[0]
    assert json.loads(str(warnings)) == ["STEP_COMPLETE:zzz ignored: the running step is 'b'"]


def test_step_error_without_step_is_kept_on_the_run(stepflow: StepflowRunner, db_path: Path) -> None:
    stepflow("run", "--", "bash", "-c", "echo STEP_ERROR:early trouble")
    assert runs(db_path)[0][4] == "early trouble"


def test_stderr_is_tagged_and_not_parsed_for_markers(stepflow: StepflowRunner, db_path: Path) -> None:
    stepflow("run", "--", "bash", "-c", "echo out; echo STEP_START:forged >&2")
    assert steps(db_path) == []
    assert query(db_path, "SELECT stream, data FROM logs ORDER BY first_line") == [(1, b"out"), (2, b"STEP_START:forged")]
    stepflow("run", "--stderr-markers", "--", "bash", "-c", "echo STEP_START:real >&2")
    assert steps(db_path)[0][0] == "real"


def test_markers_anywhere_finds_set_x_traces(stepflow: StepflowRunner, db_path: Path) -> None:
    stepflow("run", "--markers", "anywhere", "--", "bash", "-c", "echo '#5 0.12 STEP_START:docker build'")
    assert steps(db_path)[0][0] == "docker build"


def test_markers_anywhere_counts_a_traced_or_built_marker_once(stepflow: StepflowRunner, db_path: Path) -> None:
    # set -x traces on stdout: `+ echo STEP_START:one` and then `STEP_START:one` itself
    script = ("BASH_XTRACEFD=1; set -x; echo STEP_START:one; echo STEP_COMPLETE:one; echo STEP_START:two;"
              " echo 'grep found: STEP_START:deploy in file.txt';"
              " echo '#5 [2/4] RUN echo STEP_START:deps && pip install -r requirements.txt';"
              " echo '#5 0.231 STEP_START:deps'")
    result = stepflow("run", "--markers", "anywhere", "-o", "plain", "--", "bash", "-c", script)
    assert result.returncode == 0
    assert [row[:2] for row in steps(db_path)] == [("one", "completed"), ("two", "completed"),
                                                    ("deps", "completed")]
    assert b"warning" not in result.stderr


def test_hostile_output_is_stored_safely(stepflow: StepflowRunner, db_path: Path) -> None:
    big = 8 * 1024 * 1024
    code = (
        "import sys; w = sys.stdout.buffer.write; "
        "w(b'bad \\xff\\xfe utf8\\n'); w(b'nul \\x00 byte\\n'); "
        f"w(b'L' * {big} + b'\\n'); w(b'progress 10%\\rprogress 100%\\n'); w(b'tail without newline')"
    )
    result = stepflow("run", "--", *py(code))
    assert result.returncode == 0
    lines = log_text(db_path)
    assert lines[:2] == [b"bad \xff\xfe utf8", b"nul \x00 byte"]
    assert len(lines[2]) == 1024 * 1024  # capped at STEPFLOW_MAX_LINE (1 MiB), not lost
    assert query(db_path, "SELECT cut FROM logs WHERE length(data) = ?", (1024 * 1024,)) == [(big - 1024 * 1024,)]
    assert lines[3:] == [b"progress 10%\rprogress 100%", b"tail without newline"]


def test_cwd_and_relative_artifacts(stepflow: StepflowRunner, db_path: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    script = "echo data > out.txt; echo ARTIFACT:out.txt:the output; echo ARTIFACT:missing.bin; echo ARTIFACT:."
    result = stepflow("run", "--cwd", str(work), "--", "bash", "-c", script)
    assert result.returncode == 0
    shown = json.loads(stepflow("show", "last", "--json").stdout)
    by_name = {a["source_path"]: a for a in shown["artifacts"]}
    assert by_name["out.txt"]["size"] == 5 and by_name["out.txt"]["description"] == "the output"
    assert Path(by_name["out.txt"]["path"]).read_text() == "data\n"
    assert by_name["missing.bin"]["sha256"] is None
    assert shown["status"] == "completed"
    assert any("missing.bin not copied: no such file" in w for w in shown["warnings"])
    assert any("not copied: is a directory" in w for w in shown["warnings"])


def test_artifact_fifo_does_not_hang(stepflow: StepflowRunner, db_path: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = stepflow("run", "--", "bash", "-c", f"echo ARTIFACT:{fifo}", timeout=30)
    assert result.returncode == 0
    assert "is not a regular file" in json.loads(stepflow("show", "last", "--json").stdout)["warnings"][0]


def test_sigint_is_passed_on_and_gives_130(db_path: Path, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    code = (
        "import signal, sys, time\n"
        f"def bye(*a): open({str(seen)!r}, 'w').write('INT'); sys.exit(0)\n"
        "signal.signal(signal.SIGINT, bye)\nprint('STEP_START:wait', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--", *py(code)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"STEP_START:wait\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert seen.read_text() == "INT"
    assert runs(db_path)[0][:2] == ("cancelled", 130)


def test_sigterm_to_stepflow_is_passed_on(db_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--", *py("print('up', flush=True); import time; time.sleep(60)")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert runs(db_path)[0][:2] == ("cancelled", 143)


def test_output_is_visible_to_another_reader_while_running(db_path: Path) -> None:
    code = "import time\nfor i in range(3): print(f'line {i}', flush=True)\ntime.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--", *py(code)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(log_text(db_path)) == 3)
        assert log_text(db_path) == [b"line 0", b"line 1", b"line 2"]
        assert query(db_path, "PRAGMA journal_mode") == [("wal",)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_json_output_is_one_event_per_line(stepflow: StepflowRunner) -> None:
    result = stepflow("run", "--output", "json", "--", "bash", "-c", "echo STEP_START:a; echo hi; exit 2")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["run_started", "step_started", "line", "step_failed", "run_finished"]
    assert events[2]["text"] == "hi"
    assert events[-1]["status"] == "failed" and events[-1]["exit_code"] == 2
    assert result.returncode == 2


def test_quiet_output_is_silent_on_success_and_shows_the_failing_step(stepflow: StepflowRunner) -> None:
    ok = stepflow("run", "--output", "quiet", "--", "bash", "-c", "echo STEP_START:a; echo fine")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, b"", b"")
    bad = stepflow("run", "--output", "quiet", "--", "bash", "-c",
                   "echo STEP_START:a; echo early; echo STEP_START:b; echo why it broke; echo STEP_ERROR:nope; exit 1")
    assert bad.returncode == 1
    assert bad.stdout == b"why it broke\n"
    assert b"'b' failed" in bad.stderr and b"early" not in bad.stdout


def test_live_output_falls_back_without_failing(stepflow: StepflowRunner) -> None:
    result = stepflow("run", "--output", "live", "--", "bash", "-c", "echo STEP_START:a; echo hi")
    assert result.returncode == 0


def test_two_runs_write_one_store_at_once(db_path: Path) -> None:
    code = "import time\nfor s in range(5):\n  print(f'STEP_START:s{s}', flush=True)\n  for i in range(2000): print(f'line {i}')\n  time.sleep(0.05)"
    procs = [subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--output", "quiet", "--", *py(code)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert query(db_path, "SELECT status, total_steps, line_count FROM executions") == [("completed", 5, 10000)] * 2
    assert query(db_path, "SELECT SUM(line_count) FROM logs") == [(20000,)]
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]


@pytest.mark.parametrize("var, value", [
    ("STEPFLOW_BUSY_TIMEOUT", "soon"),
    ("STEPFLOW_CACHE_SIZE", "-5"),
    ("STEPFLOW_BUFFER_SIZE", "12 bytes"),
    ("STEPFLOW_LOG_LEVEL", "loud"),
])
def test_bad_setting_is_refused_with_its_name(stepflow: StepflowRunner, var: str, value: str) -> None:
    result = stepflow("run", "--", "true", env={var: value})
    assert result.returncode == 2
    line = result.stderr.decode().strip()
    assert line.startswith(f"stepflow: error: {var}={value!r}") and "\n" not in line


def test_bad_cwd_is_a_usage_error(stepflow: StepflowRunner) -> None:
    result = stepflow("run", "--cwd", "/no/such/dir", "--", "true")
    assert result.returncode == 2
    assert result.stderr.decode().strip() == "stepflow: error: --cwd /no/such/dir: no such folder"


def test_sighup_to_stepflow_is_passed_on(db_path: Path) -> None:
    code = "import signal, sys, time\nsignal.signal(signal.SIGHUP, lambda *a: sys.exit(9))\nprint('up', flush=True)\ntime.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--", *py(code)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 129
    assert runs(db_path)[0][:2] == ("cancelled", 129)


def test_kill_9_of_the_command_is_137_and_recorded(db_path: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    proc = subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--", "bash", "-c",
                             f"echo STEP_START:work; echo $$ > {pidfile}; sleep 60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert proc.wait(timeout=30) == 137
    assert runs(db_path)[0][:2] == ("failed", 137)
    assert steps(db_path)[0][:3] == ("work", "failed", "killed by signal 9")


def test_settings_reach_the_connection(tmp_path: Path) -> None:
    from stepflow.config import load_settings
    from stepflow.store.connection import connect

    settings = load_settings({"STEPFLOW_WAL_AUTOCHECKPOINT": "777", "STEPFLOW_CACHE_SIZE": "1234",
                              "STEPFLOW_BUSY_TIMEOUT": "4321", "STEPFLOW_MMAP_SIZE": "1M"}, storage=tmp_path)
    conn = connect(settings.database, settings)
    pragmas = {p: conn.execute(f"PRAGMA {p}").fetchall()[0][0] for p in (
        "journal_mode", "synchronous", "cache_size", "mmap_size", "wal_autocheckpoint",
        "journal_size_limit", "temp_store")}
    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "cache_size": 1234, "mmap_size": 1024 * 1024,
                       "wal_autocheckpoint": 777, "journal_size_limit": 64 * 1024 * 1024, "temp_store": 2}


def test_busy_timeout_bounds_the_wait_for_a_held_lock(tmp_path: Path) -> None:
    """STEPFLOW_BUSY_TIMEOUT reaches the busy handler (PRAGMA busy_timeout reads 0 under a
    custom handler): a writer waits that long for a lock another connection holds, then gives up."""
    import time

    import apsw

    from stepflow.config import load_settings
    from stepflow.store.connection import connect

    settings = load_settings({"STEPFLOW_BUSY_TIMEOUT": "400"}, storage=tmp_path)
    holder = connect(settings.database, settings)
    holder.execute("CREATE TABLE IF NOT EXISTS t (x)")
    holder.execute("BEGIN IMMEDIATE")
    waiter = connect(settings.database, settings)
    started = time.monotonic()
    with pytest.raises(apsw.BusyError):
        waiter.execute("BEGIN IMMEDIATE")
    assert time.monotonic() - started >= 0.4
    holder.execute("ROLLBACK")
    waiter.execute("BEGIN IMMEDIATE")  # free again: the waiter gets it at once
    waiter.execute("ROLLBACK")


def test_run_ids_are_uuid4_text() -> None:
    import uuid

    from stepflow.run.recorder import new_id

    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in list(ids)[:50]:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)


def test_output_buffered_when_the_command_exits_is_all_read(stepflow: StepflowRunner, db_path: Path) -> None:
    # 1 MB of markers: slow to handle, written at once, then the command is gone at once
    code = "import sys\nsys.stdout.write(''.join(f'STEP_START:s{i}\\n' for i in range(60000)))"
    assert stepflow("run", "--output", "quiet", "--", *py(code), timeout=120).returncode == 0
    assert query(db_path, "SELECT total_steps FROM executions") == [(60000,)]


def test_a_background_writer_left_behind_does_not_hold_the_run(stepflow: StepflowRunner, tmp_path: Path) -> None:
    pidfile = tmp_path / "bg"
    script = f"(while true; do echo bg; sleep 0.01; done) & echo $! > {pidfile}; echo main"
    try:
        started = time.monotonic()
        result = stepflow("run", "--output", "quiet", "--", "bash", "-c", script, timeout=60)
        assert result.returncode == 0
        assert time.monotonic() - started < 30  # stops reading DRAIN_MAX (5 s) after the command ended
    finally:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


@pytest.mark.parametrize("var, value", [
    ("STEPFLOW_BUSY_TIMEOUT", "99999999999"),
    ("STEPFLOW_CACHE_SIZE", "1e9"),
    ("STEPFLOW_WAL_AUTOCHECKPOINT", "²"),
])
def test_out_of_range_setting_is_refused(stepflow: StepflowRunner, var: str, value: str) -> None:
    for args in (("run", "--", "true"), ("ls",)):
        result = stepflow(*args, env={var: value})
        assert result.returncode == 2
        assert result.stderr.decode().strip().startswith(f"stepflow: error: {var}={value!r}")


def test_bytes_that_are_not_utf8_in_arguments_and_names(stepflow: StepflowRunner, db_path: Path, tmp_path: Path) -> None:
    odd = os.fsdecode(b"caf\xe9")
    folder = tmp_path / os.fsdecode(b"dir-\xe9")
    folder.mkdir()
    result = stepflow("run", "-n", odd, "-t", odd, "--cwd", str(folder), "--", "bash", "-c",
                      "printf '%s\\n' \"$1\"; echo STEP_START:s; echo out", "sh", odd,
                      env={os.fsdecode(b"BAD\xff"): "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"caf\xe9\n")  # the command got its argument byte for byte
    (name, command, status, tags), = query(db_path, "SELECT name, command, status, tags FROM executions")
    assert (name, status, json.loads(str(tags))) == ("caf\ufffd", "completed", ["caf\ufffd"])
    assert "caf\ufffd" in str(command)
    assert query(db_path, "SELECT line_count FROM executions") == [(2,)]
    for args in (("show", os.fsdecode(b"\xff\xfe\xfd\xfc")), ("ls", "--name", odd), ("logs", "last", "--grep", odd)):
        out = stepflow(*args)
        assert b"Traceback" not in out.stderr and out.returncode in (0, 1), out.stderr


def test_artifact_with_the_longest_file_name(stepflow: StepflowRunner, tmp_path: Path) -> None:
    name = "a" * 250
    (tmp_path / name).write_text("x")
    result = stepflow("run", "--cwd", str(tmp_path), "--", "bash", "-c", f"echo ARTIFACT:{name}; echo after")
    assert result.returncode == 0
    shown = json.loads(stepflow("show", "last", "--json").stdout)
    assert shown["status"] == "completed" and shown["line_count"] == 1
    (art,) = shown["artifacts"]
    assert Path(art["path"]).read_text() == "x" and len(Path(art["path"]).name.encode()) <= 255


def test_a_failed_critical_step_never_exits_0(stepflow: StepflowRunner, db_path: Path) -> None:
    script = "trap 'exit 0' TERM; echo 'STEP_START:a[stop_on_error=true]'; echo STEP_ERROR:boom; sleep 30 & wait"
    result = stepflow("run", "--", "bash", "-c", script)
    assert result.returncode == 1
    assert query(db_path, "SELECT status, exit_code FROM executions") == [("failed", 0)]


@pytest.mark.parametrize("flag", ["--timeout", "--kill-grace"])
def test_non_finite_seconds_are_refused(stepflow: StepflowRunner, flag: str) -> None:
    result = stepflow("run", flag, "nan", "--", "true")
    assert result.returncode == 2
    assert result.stderr.decode() == f"stepflow: error: {flag} 'nan' is not a duration (90, 90s, 10m, 1h30m, 2d)\n"


def test_a_closed_reader_ends_the_command_as_in_a_pipeline(db_path: Path, tmp_path: Path) -> None:
    """`stepflow run -- yes | head -1` ends, like `yes | head -1` does."""
    out = subprocess.run(f"{sys.executable} -m stepflow run --output plain -- yes | head -1", shell=True,
                         capture_output=True, timeout=60, env={**os.environ, "STEPFLOW_STORAGE_PATH": str(db_path.parent.parent)})
    assert out.stdout == b"y\n"
    (status, exit_code), = query(db_path, "SELECT status, exit_code FROM executions")
    assert (status, exit_code) == ("failed", 141)  # 128+SIGPIPE: what yes itself got


def test_the_runner_ends_as_soon_as_the_command_and_its_pipes_are_done() -> None:
    """EOF can come before the exit status: the runner must not then wait for the drain time."""
    code = (
        "import stepflow.run.supervisor as r\n"
        "r.DRAIN_IDLE = r.DRAIN_MAX = r.WAKE_EVERY = 3600.0  # any needless wait would hang this\n"
        "for _ in range(50):\n"
        "    assert r.Supervisor(['true']).run(lambda s, d: None).exit_status == 0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_library_runs_a_command_without_the_cli(storage: Path) -> None:
    import stepflow
    from stepflow.views.quiet import QuietView

    result = stepflow.execute(stepflow.RunOptions(argv=["bash", "-c", "echo STEP_START:a; exit 4"]),
                              stepflow.load_settings(storage=storage), QuietView())
    assert (result.exit_status, result.state.status, result.state.step_count) == (4, "failed", 1)
    store = stepflow.open_store(stepflow.load_settings(storage=storage))
    try:
        assert [r.id for r in store.find_runs(stepflow.RunQuery())] == [result.run_id]
    finally:
        store.close()

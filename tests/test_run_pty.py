"""`run --pty` on real pseudo-terminals: what the command sees, what is shown and stored, and
exit statuses and signals as without it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import StepflowRunner, py, wait_for
from tests.test_live import run_in_terminal

COLOURS = ("import os, sys\n"
           "print('tty', os.isatty(0), os.isatty(1), os.isatty(2))\n"
           "print('\\x1b[31mred\\x1b[0m and \\x1b]0;title\\x07plain')\n"
           "print('to stderr', file=sys.stderr)\n"
           "print('STEP_START:build')\n"
           "sys.stdout.write('no newline at the end')\n"
           "raise SystemExit(7)\n")


def logs(stepflow: StepflowRunner, *extra: str) -> bytes:
    shown = stepflow("logs", "last", *extra)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def test_the_command_gets_a_terminal_and_keeps_its_colours(stepflow: StepflowRunner) -> None:
    result = stepflow("run", "--pty", "--", *py(COLOURS))
    assert result.returncode == 7  # the command's exit status, as without --pty
    out = result.stdout
    # stdout and stderr are one stream, on stdout, in the order written; the pty writes CR LF
    assert out.startswith(b"tty False True True\r\n")  # stdin is stepflow's (not a terminal here)
    assert b"\x1b[31mred\x1b[0m" in out and b"to stderr\r\n" in out
    assert out.index(b"red") < out.index(b"to stderr") < out.index(b"STEP_START")
    assert b"to stderr" not in result.stderr.split(b"\n", 1)[1]  # (the first line quotes the command)
    stored = logs(stepflow)
    assert b"red and plain" in stored and b"\x1b" not in stored and b"\r" not in stored
    raw = logs(stepflow, "--raw")
    assert b"\x1b" not in raw and b"red and plain\n" in raw  # stored without the escapes
    shown = json.loads(stepflow("show", "last", "--json").stdout)
    assert [s["name"] for s in shown["steps"]] == ["build"]  # markers are read from the pty's text
    assert shown["exit_code"] == 7 and "no newline at the end" in raw.decode()


def test_without_pty_the_command_sees_pipes(stepflow: StepflowRunner) -> None:
    result = stepflow("run", "--", *py("import os; print(os.isatty(1), os.isatty(2))"))
    assert result.stdout == b"False False\n"


def test_the_pty_has_a_size_outside_any_terminal(stepflow: StepflowRunner) -> None:
    result = stepflow("run", "--pty", "--", "sh", "-c", "stty size < /dev/stdout")
    assert result.returncode == 0 and result.stdout == b"24 80\r\n"


def test_the_pty_is_sized_like_the_users_terminal(storage: Path) -> None:
    code, out = run_in_terminal(["run", "--pty", "-o", "plain", "--", "sh", "-c", "stty size; test -t 0"],
                                rows=33, cols=111)
    assert code == 0, out
    assert b"\n33 111\r" in out  # (the outer terminal adds its own CR)


def run_resized(args: list[str], *, ready: bytes, rows: int, cols: int, timeout: float = 60) -> tuple[int, bytes]:
    """stepflow ARGS on a terminal of its own, resized to rows x cols once `ready` is printed."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 70, 0, 0))
            os.execvpe(sys.executable, [sys.executable, "-m", "stepflow", *args], {**os.environ, "TERM": "xterm"})
        finally:
            os._exit(127)
    out = bytearray()
    resized = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not resized and ready in out:
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                resized = True
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), bytes(out)


def test_the_window_size_follows_the_terminal(storage: Path) -> None:
    code = ("import os, signal, time\n"
            "signal.signal(signal.SIGWINCH, lambda *a: None)\n"
            "print('size', *os.get_terminal_size(1), 'ready'.upper(), flush=True)\n"
            "deadline = time.monotonic() + 30\n"
            "while os.get_terminal_size(1) == (70, 20) and time.monotonic() < deadline:\n"
            "    signal.sigtimedwait([signal.SIGWINCH], 0.5)\n"
            "print('now', *os.get_terminal_size(1), flush=True)\n")
    status, out = run_resized(["run", "--pty", "-o", "plain", "--", *py(code)], ready=b"READY", rows=40, cols=132)
    assert status == 0, out
    assert b"size 70 20 READY" in out and b"now 132 40" in out


def test_pty_under_the_live_view(storage: Path) -> None:
    code, out = run_in_terminal(["run", "--pty", "--", *py("import os\nprint('STEP_START:x')\n"
                                                           "print('\\x1b[32mgreen\\x1b[0m', os.isatty(1))")])
    assert code == 0, out
    # on a terminal the live view draws the output's tail itself, from the stored (stripped) text
    assert b"\xe2\x94\x82 green True" in out
    assert b"Duration" in out  # the live view's summary
    assert b"green True" in logs_of_last()


def logs_of_last() -> bytes:
    return subprocess.run([sys.executable, "-m", "stepflow", "logs", "last"], capture_output=True, check=True,
                          timeout=60).stdout


def test_pty_under_quiet(stepflow: StepflowRunner) -> None:
    result = stepflow("run", "--pty", "-o", "quiet", "--", *py("import os; print('STEP_START:x'); print(os.isatty(1))"))
    assert result.returncode == 0 and b"True" not in result.stdout
    assert b"True" in logs(stepflow)


def _runs(stepflow: StepflowRunner) -> tuple[str, int]:
    shown = json.loads(stepflow("show", "last", "--json").stdout)
    return shown["status"], shown["exit_code"]


def test_pty_timeout_is_124(stepflow: StepflowRunner) -> None:
    result = stepflow("run", "--pty", "--timeout", "0.5", "--kill-grace", "1", "--", "sleep", "60")
    assert result.returncode == 124
    assert _runs(stepflow) == ("timed_out", 124)


def _started(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "stepflow", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def _wait_line(proc: subprocess.Popen[bytes], expected: bytes) -> None:
    assert proc.stdout is not None
    assert proc.stdout.readline() == expected


def test_pty_sigint_is_passed_on_and_gives_130(stepflow: StepflowRunner, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    code = ("import signal, sys, time\n"
            f"def bye(*a): open({str(seen)!r}, 'w').write('INT'); sys.exit(0)\n"
            "signal.signal(signal.SIGINT, bye)\nprint('up', flush=True)\ntime.sleep(60)\n")
    proc = _started(["run", "--pty", "--", *py(code)])
    _wait_line(proc, b"up\r\n")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert seen.read_text() == "INT"
    assert _runs(stepflow) == ("cancelled", 130)


def test_pty_kill_9_of_the_command_is_137(stepflow: StepflowRunner, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    proc = _started(["run", "--pty", "--", "bash", "-c", f"echo STEP_START:work; echo $$ > {pidfile}; sleep 60"])
    ready: Callable[[], bool] = lambda: pidfile.exists() and pidfile.read_text().strip() != ""  # noqa: E731
    assert wait_for(ready)
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert proc.wait(timeout=30) == 137
    assert _runs(stepflow) == ("failed", 137)


def test_pty_command_not_found_is_127(stepflow: StepflowRunner) -> None:
    result = stepflow("run", "--pty", "--", "no-such-command-here")
    assert result.returncode == 127 and b"command not found" in result.stderr


def test_pty_appears_in_help(stepflow: StepflowRunner) -> None:
    shown = stepflow("run", "--help", env={"COLUMNS": "200"})
    assert b"--pty" in shown.stdout and b"one stream" in shown.stdout

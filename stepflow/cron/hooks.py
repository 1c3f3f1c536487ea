"""Run a hook command after a run: `/bin/sh -c CMD`, the run as JSON on stdin, STEPFLOW_* set.

A hook never changes the run: its failure (non-zero exit, not found, timeout) comes back as a
warning string in HookResult, never as an exception, and a hook that outlives `timeout` has
its whole process group stopped (SIGTERM, then SIGKILL after `kill_grace`). Its stdout and
stderr go where the caller says (by default stepflow's own, so cron mails what it prints).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import IO, Any

from stepflow.record import record

RUN_ID = "STEPFLOW_RUN_ID"
RUN_NAME = "STEPFLOW_RUN_NAME"
RUN_STATUS = "STEPFLOW_RUN_STATUS"
EXIT_CODE = "STEPFLOW_EXIT_CODE"
DURATION_S = "STEPFLOW_DURATION_S"
FAILED_STEP = "STEPFLOW_FAILED_STEP"
LOG_TAIL = "STEPFLOW_LOG_TAIL"
STREAK = "STEPFLOW_STREAK"
HOOK = "STEPFLOW_HOOK"  # which hook this is: on-failure, on-success, on-streak, on-recover, on-finish
VARIABLES = (RUN_ID, RUN_NAME, RUN_STATUS, EXIT_CODE, DURATION_S, FAILED_STEP, LOG_TAIL, STREAK, HOOK)

MAX_TAIL_CHARS = 10_000  # of STEPFLOW_LOG_TAIL (far under Linux's 128 KiB per variable)

Output = int | IO[Any] | None


@record(frozen=True)
class HookResult:
    """How a hook ended. `warning` is None when it exited 0 in time."""

    command: str
    exit_code: int | None  # None: it did not start, or it was stopped at its timeout
    seconds: float
    timed_out: bool = False
    warning: str | None = None


def failed_step(run: Mapping[str, Any]) -> str:
    """The name of the run's first failed step, or ''."""
    for step in run.get("steps") or ():
        if step.get("status") == "failed":
            return str(step.get("name") or "")
    return ""


def hook_variables(run: Mapping[str, Any], *, streak: int = 0, log_tail: str = "", which: str = "") -> dict[str, str]:
    """The STEPFLOW_* variables a hook gets for `run` (a `show --json` dict). Pure."""
    duration = run.get("duration_s")
    exit_code = run.get("exit_code")
    tail = log_tail[-MAX_TAIL_CHARS:].replace("\0", "")
    return {
        RUN_ID: str(run.get("id") or ""),
        RUN_NAME: str(run.get("name") or ""),
        RUN_STATUS: str(run.get("status") or ""),
        EXIT_CODE: "" if exit_code is None else str(exit_code),
        DURATION_S: "" if duration is None else f"{float(duration):.3f}",
        FAILED_STEP: failed_step(run),
        LOG_TAIL: tail,
        STREAK: str(streak),
        HOOK: which,
    }


def run_hook(
    command: str,
    run: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    timeout: float,
    streak: int = 0,
    log_tail: str = "",
    which: str = "",
    stdout: Output = None,
    stderr: Output = None,
    cwd: str | None = None,
    kill_grace: float = 2.0,
) -> HookResult:
    """Run `command` with /bin/sh for the finished `run`; returns how it went, never raises.

    `env` is the environment to start from (the run's own, usually); the STEPFLOW_* variables
    of `hook_variables` are added over it. The JSON goes in through a temporary file, so a hook
    that never reads its stdin cannot block on a full pipe.
    """
    import tempfile

    started = time.monotonic()
    full_env = {**env, **hook_variables(run, streak=streak, log_tail=log_tail, which=which)}
    label = f"{which} hook" if which else "hook"
    try:
        with tempfile.TemporaryFile() as stdin:
            stdin.write(json.dumps(run, ensure_ascii=False, default=str).encode("utf-8", "surrogateescape"))
            stdin.write(b"\n")
            stdin.seek(0)
            proc = subprocess.Popen(
                ["/bin/sh", "-c", command], stdin=stdin, stdout=stdout, stderr=stderr, env=full_env, cwd=cwd,
                process_group=0,
            )
    except OSError as exc:
        return HookResult(command, None, time.monotonic() - started,
                          warning=f"{label} {command!r} did not start: {exc.strerror or exc}")
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(proc, kill_grace)
        return HookResult(command, None, time.monotonic() - started, timed_out=True,
                          warning=f"{label} {command!r} timed out after {timeout:g} s and was stopped")
    except BaseException:
        _stop_group(proc, 0)  # Ctrl-C while waiting: the hook goes with stepflow
        raise
    seconds = time.monotonic() - started
    if code == 0:
        return HookResult(command, 0, seconds)
    how = f"was killed by signal {-code}" if code < 0 else f"exited {code}"
    if code == 127:
        how += " (command not found?)"
    return HookResult(command, code, seconds, warning=f"{label} {command!r} {how}")


def _stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the hook's process group, SIGKILL what is left of it after `grace`, reap the shell."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _signal_group(proc.pid, signal.SIGKILL)  # the shell may be gone and what it started not
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)

"""Metrics for node_exporter's textfile collector: <dir>/stepflow.prom, one set per job name.

    stepflow_last_status{job,status}             1 for the last run's status, 0 for the others
    stepflow_last_exit_code{job}                 the last run's exit code (absent: none)
    stepflow_last_duration_seconds{job}
    stepflow_last_run_timestamp_seconds{job}     when the last run started
    stepflow_last_success_timestamp_seconds{job} when the last completed run ended
    stepflow_consecutive_failures{job}           the current failure streak (see streak.py)
    stepflow_runs_total{job}                     runs in the store (falls when it is pruned)

The file is written whole and atomically: a temporary file in the same folder, fsync, rename,
so the collector never reads half a file. Two runs finishing at once take turns under an flock
on <dir>/.stepflow.prom.lock and each writes what the store holds then, so none overwrites the
other's newer figures with older ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stepflow.cron.streak import SUCCESS, failure_streak
from stepflow.history.detail import parse_time
from stepflow.record import record

FILE_NAME = "stepflow.prom"
LOCK_NAME = ".stepflow.prom.lock"
NOT_ENDED = frozenset({"skipped", "running", "pending"})
STATUSES = ("completed", "failed", "timed_out", "cancelled", "abandoned", "skipped", "running")


@record(frozen=True)
class JobMetrics:
    """The figures of one job name."""

    job: str
    last_status: str
    last_exit_code: int | None
    last_duration_s: float | None
    last_run_ts: float | None
    last_success_ts: float | None
    consecutive_failures: int
    runs_total: int


def _ts(text: str | None) -> float | None:
    value = parse_time(text)
    return value.timestamp() if value is not None else None


def job_metrics(job: str, runs: Sequence[Mapping[str, Any]], *, runs_total: int | None = None,
                last_success: Mapping[str, Any] | None = None) -> JobMetrics:
    """Figures from a job's recent runs (`ls --json` dicts, newest first). Pure.

    The "last" run is the newest that ran to an end: a skipped run (another held the lock) or
    one still running would hide how the job last did; they count in runs_total only.
    `last_success`: the newest completed run when it may be older than `runs` reach.
    """
    ended = [r for r in runs if r.get("status") not in NOT_ENDED]
    last = ended[0] if ended else runs[0] if runs else {}
    success = next((r for r in runs if r.get("status") in SUCCESS), None) or last_success
    return JobMetrics(
        job=job,
        last_status=str(last.get("status") or ""),
        last_exit_code=last.get("exit_code"),
        last_duration_s=last.get("duration_s"),
        last_run_ts=_ts(last.get("started_at") or last.get("created_at")),
        last_success_ts=_ts(success.get("completed_at") or success.get("started_at")) if success else None,
        consecutive_failures=failure_streak([r.get("status") for r in runs]),
        runs_total=len(runs) if runs_total is None else runs_total,
    )


def escape_label(value: str) -> str:
    """A label value as the exposition format wants it: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


FAMILIES: tuple[tuple[str, str, str, Callable[[JobMetrics], float | None]], ...] = (
    ("stepflow_last_exit_code", "gauge", "Exit code of the job's last run.", lambda m: m.last_exit_code),
    ("stepflow_last_duration_seconds", "gauge", "Duration of the job's last run.", lambda m: m.last_duration_s),
    ("stepflow_last_run_timestamp_seconds", "gauge", "When the job's last run started (Unix time).",
     lambda m: m.last_run_ts),
    ("stepflow_last_success_timestamp_seconds", "gauge", "When the job's last completed run ended (Unix time).",
     lambda m: m.last_success_ts),
    ("stepflow_consecutive_failures", "gauge", "Failed or timed-out runs of the job in a row, newest first.",
     lambda m: m.consecutive_failures),
    ("stepflow_runs_total", "counter", "Runs of the job in the stepflow store.", lambda m: m.runs_total),
)


def render(jobs: Iterable[JobMetrics]) -> str:
    """The text exposition format (0.0.4) of `jobs`, sorted by job name. Pure."""
    ordered = sorted(jobs, key=lambda m: m.job)
    out = ["# HELP stepflow_last_status Status of the job's last run: 1 for its status, 0 for the others.",
           "# TYPE stepflow_last_status gauge"]
    for m in ordered:
        job = escape_label(m.job)
        statuses = STATUSES if m.last_status in STATUSES or not m.last_status else (*STATUSES, m.last_status)
        for status in statuses:
            out.append(f'stepflow_last_status{{job="{job}",status="{escape_label(status)}"}} '
                       f"{int(status == m.last_status)}")
    for name, kind, help_text, get in FAMILIES:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for m in ordered:
            value = get(m)
            if value is not None:
                out.append(f'{name}{{job="{escape_label(m.job)}"}} {_number(float(value))}')
    return "\n".join(out) + "\n"


def write_textfile(folder: Path, jobs: Iterable[JobMetrics] | str) -> Path:
    """Write <folder>/stepflow.prom atomically (temp file, fsync, rename); returns its path.

    Raises:
        OSError: the folder cannot be written (the caller turns it into a warning).
    """
    folder = Path(folder)
    text = jobs if isinstance(jobs, str) else render(jobs)
    target = folder / FILE_NAME
    fd, temp = tempfile.mkstemp(prefix=".stepflow.prom.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8", "surrogateescape"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o644)  # node_exporter runs as its own user
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)
    return target


def update_textfile(folder: Path, collect: Callable[[], Iterable[JobMetrics]], *, wait: float = 10.0) -> Path:
    """Under the folder's flock, `collect()` the figures and write them: runs finishing at once
    take turns, and the last to write has read the newest store. After `wait` seconds without
    the flock it writes anyway (a stuck writer must not stop the metrics).

    Raises:
        OSError: the folder cannot be written.
    """
    folder = Path(folder)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.02)
        return write_textfile(folder, list(collect()))
    finally:
        os.close(fd)

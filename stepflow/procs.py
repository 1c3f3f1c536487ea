"""Who ran a run: a process's start time, so a reused pid is never taken for the same process."""

from __future__ import annotations

import os

_boot_time: float | None = None


def _boot() -> float:
    global _boot_time
    if _boot_time is None:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    _boot_time = float(line.split()[1])
                    break
            else:
                _boot_time = 0.0
    return _boot_time


def start_time(pid: int) -> float | None:
    """Seconds since the epoch when process `pid` started, or None when it does not exist.

    Reads /proc directly (psutil costs ~40 ms to import, too much for `stepflow run`'s start);
    elsewhere it asks psutil. Precise to a clock tick, so compare with a small tolerance.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return _psutil_start_time(pid)
    fields = stat[stat.rfind(b")") + 2 :].split()
    ticks = int(fields[19])  # field 22 of proc(5), counted after the "(comm)" field
    return _boot() + ticks / os.sysconf("SC_CLK_TCK")


def _psutil_start_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_alive(pid: int | None, started: float | None, *, tolerance: float = 1.0) -> bool:
    """True when the process that recorded (pid, started) still runs; False when it is gone."""
    if pid is None:
        return False
    now_started = start_time(pid)
    if now_started is None:
        return False
    return started is None or abs(now_started - started) <= tolerance

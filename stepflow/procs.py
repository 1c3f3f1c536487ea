"""Who ran a run: a process's start time, so a reused pid is never taken for the same process."""

from __future__ import annotations

import os


def start_time(pid: int) -> float | None:
    """Seconds after boot when process `pid` started, or None when it does not exist.

    Counted from boot, not on the wall clock: a clock stepped by NTP or a resumed VM moves
    every wall-clock start time and would make live runs look gone. Reads /proc directly
    (psutil costs ~40 ms to import, too much for `stepflow run`'s start); elsewhere psutil.
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
    return ticks / os.sysconf("SC_CLK_TCK")


def _psutil_start_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time() - psutil.boot_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_alive(pid: int | None, started: float | None, *, tolerance: float = 0.05) -> bool:
    """True when the process that recorded (pid, started) still runs; False when it is gone."""
    if pid is None:
        return False
    now_started = start_time(pid)
    if now_started is None:
        return False
    return started is None or abs(now_started - started) <= tolerance


# read(2)'s number per machine, as /proc/<pid>/syscall shows it (its first field).
_READ_SYSCALL = {"x86_64": 0, "aarch64": 63, "riscv64": 63, "i686": 3, "armv7l": 3}


def reads_terminal(pgid: int, tty: str, *, limit: int = 64) -> bool:
    """True when a process of the group led by `pgid` (or a descendant of its leader) is
    blocked reading the terminal `tty` (a path such as /dev/pts/3): it waits for the user.

    Linux only (/proc/<pid>/syscall); False wherever that cannot be told. Looks at no more
    than `limit` processes. Read-only.
    """
    nr = _READ_SYSCALL.get(os.uname().machine)
    if nr is None:
        return False
    todo, seen = [pgid], 0
    while todo and seen < limit:
        pid = todo.pop()
        seen += 1
        try:
            with open(f"/proc/{pid}/syscall", "rb") as f:
                fields = f.read().split()
            if len(fields) > 1 and fields[0] == str(nr).encode():
                fd = int(fields[1], 16)
                if os.readlink(f"/proc/{pid}/fd/{fd}") == tty:
                    return True
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return False

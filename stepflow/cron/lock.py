"""The overlap lock of `--lock NAME --on-overlap skip|wait|kill`: one flock per job name.

The lock is an flock on <storage>/locks/<safe name>.lock, so the kernel frees it when its
holder dies, kill -9 included: there is never a stale pid file to clean up. The file names its
holder (pid, pid start time, run id, user, host, since) for the "who holds it" message and for
`kill`, which signals the holder only while it is still the recorded process (same pid start
time), never a process that reused the pid.

Several users of one store share the locks: the folder is made mode 1777 (world-writable,
sticky, as /tmp) and each lock file 0666, whatever the umask. Opening an existing file never
uses O_CREAT, so fs.protected_regular does not refuse another user's lock file.

A run that does not get the lock is skipped: `acquire` raises LockBusy, whose `exit_status`
is SKIPPED_EXIT (0). A skip is not a failure: cron, chronic and cronic send no mail for it,
systemd does not mark the unit failed, and `cmd && next` goes on as when nothing was needed.
The skip is visible in the history instead (status `skipped`, with the holder).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from stepflow import procs
from stepflow.errors import StepflowError
from stepflow.record import fields as record_fields
from stepflow.record import record

OnOverlap = Literal["skip", "wait", "kill"]
SKIPPED_EXIT = 0  # see the module docstring: a skip must not mail or alert as a failure
DEFAULT_KILL_GRACE = 15.0  # > stepflow run's own 5 s grace for its command, plus its last writes
POLL = 0.05
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class LockBusy(StepflowError):
    """Another run holds the lock: this run is skipped (recorded as `skipped`, exit SKIPPED_EXIT)."""

    exit_status = SKIPPED_EXIT

    def __init__(self, message: str, *, name: str, holder: Holder | None, waited: float = 0.0) -> None:
        super().__init__(message)
        self.name = name
        self.holder = holder
        self.waited = waited


class LockError(StepflowError):
    """The lock folder or file cannot be made or opened (read-only store, permissions)."""


@record(frozen=True)
class Holder:
    """Who holds a lock, as its holder recorded it."""

    pid: int | None = None
    pid_started: float | None = None
    run_id: str | None = None
    user: str | None = None
    host: str | None = None
    since: str | None = None
    command_pgid: int | None = None  # the wrapped command's process group, once spawned

    def describe(self) -> str:
        """`run 3f2a9c1e (pid 4242, alice@web1, since 2026-12-03T14:00:00+00:00)`."""
        who = f"{self.user or '?'}@{self.host or '?'}"
        run = f"run {self.run_id[:8]} " if self.run_id else ""
        return f"{run}(pid {self.pid if self.pid is not None else '?'}, {who}, since {self.since or '?'})"

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "pid_started": self.pid_started, "run_id": self.run_id, "user": self.user,
                "host": self.host, "since": self.since, "command_pgid": self.command_pgid}


def safe_name(name: str) -> str:
    """A file name for lock `name`: its safe characters, plus a hash when any were replaced."""
    kept = "".join(c if c in _SAFE else "_" for c in name)[:80].lstrip(".") or "_"
    if kept != name:
        import hashlib

        kept += "-" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return kept


def lock_path(lock_dir: Path, name: str) -> Path:
    return Path(lock_dir) / f"{safe_name(name)}.lock"


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in lock file `path`, or None (free, unreadable, half-written)."""
    try:
        data = json.loads(Path(path).read_bytes() or b"null")
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    fields = {f.name for f in record_fields(Holder)}
    return Holder(**{k: v for k, v in data.items() if k in fields})


class HeldLock:
    """A lock this process holds; closing it (or leaving the `with` block) frees it."""

    def __init__(self, fd: int, path: Path, holder: Holder) -> None:
        self.fd: int | None = fd
        self.path = path
        self.holder = holder

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def set_command(self, pgid: int) -> None:
        """Record the wrapped command's process group, so `kill` from the next run reaches it."""
        self.holder = Holder(**{**self.holder.as_dict(), "command_pgid": pgid})
        self._write()

    def _write(self) -> None:
        if self.fd is None:
            return
        data = json.dumps(self.holder.as_dict()).encode() + b"\n"
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        os.close(self.fd)  # closing frees the flock; the file stays (see _open)
        self.fd = None


def acquire(
    lock_dir: Path,
    name: str,
    *,
    on_overlap: OnOverlap = "skip",
    wait_timeout: float | None = None,
    run_id: str | None = None,
    kill_grace: float = DEFAULT_KILL_GRACE,
    clock: Callable[[], float] = time.monotonic,
) -> HeldLock:
    """Take lock `name` under `lock_dir`, doing `on_overlap` when another run holds it.

    skip: give up at once. wait: wait up to `wait_timeout` seconds (None: as long as it
    takes). kill: SIGTERM the holder, SIGKILL it (and its command's group) after `kill_grace`
    seconds, then take the lock; only while the holder is still the process it recorded.

    Raises:
        LockBusy: not taken (held, waited too long, or the holder could not be stopped).
        LockError: the folder or file cannot be made or opened.
    """
    path = lock_path(lock_dir, name)
    fd = _open(Path(lock_dir), path)
    try:
        started = clock()
        if not _try(fd):
            if on_overlap == "skip":
                raise _busy(name, path, "is held by", started, clock)
            if on_overlap == "wait":
                if not _wait(fd, None if wait_timeout is None else started + wait_timeout, clock):
                    raise _busy(name, path, f"was still held after waiting {clock() - started:.0f} s by",
                                started, clock)
            elif on_overlap == "kill":
                _kill_holder(fd, name, path, kill_grace, started, clock)
            else:
                raise ValueError(f"on_overlap={on_overlap!r}")
    except BaseException:
        os.close(fd)
        raise
    holder = Holder(
        pid=os.getpid(), pid_started=procs.start_time(os.getpid()), run_id=run_id, user=_user(),
        host=os.uname().nodename, since=datetime.now().astimezone().isoformat(timespec="seconds"),
    )
    held = HeldLock(fd, path, holder)
    held._write()
    return held


def _open(lock_dir: Path, path: Path) -> int:
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        _make_dir(lock_dir)
        for _ in range(3):
            try:
                return os.open(path, flags)
            except FileNotFoundError:
                pass
            try:
                fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue  # another run made it meanwhile: open that one
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o666)  # whatever the umask: other users of the store share it
            return fd
        return os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockError(f"lock file {path} is a symbolic link; remove it") from exc
        raise LockError(f"cannot open the lock file {path}: {exc.strerror or exc}") from exc


def _make_dir(lock_dir: Path) -> None:
    if lock_dir.is_dir():
        return
    os.makedirs(lock_dir.parent, mode=0o700, exist_ok=True)  # a new store folder is private, as open_store makes it
    try:
        lock_dir.mkdir()
    except FileExistsError:
        return
    with contextlib.suppress(OSError):
        os.chmod(lock_dir, 0o1777)


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _wait(fd: int, deadline: float | None, clock: Callable[[], float]) -> bool:
    """Poll for the lock until `deadline` (None: block in the kernel until it is free)."""
    if deadline is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    while True:
        if _try(fd):
            return True
        if clock() >= deadline:
            return False
        time.sleep(POLL)


def _busy(name: str, path: Path, verb: str, started: float, clock: Callable[[], float]) -> LockBusy:
    holder = read_holder(path)
    who = holder.describe() if holder else "another process"
    return LockBusy(f"skipped: lock {name!r} {verb} {who}", name=name, holder=holder, waited=clock() - started)


def _kill_holder(fd: int, name: str, path: Path, grace: float, started: float,
                 clock: Callable[[], float]) -> None:
    holder = read_holder(path)
    if holder is None or holder.pid is None or not procs.is_alive(holder.pid, holder.pid_started):
        # Not recorded yet (it is between flock and write) or recorded by a process that is
        # gone while the lock is still held (a descendant kept the file open): nothing safe to signal.
        if _wait(fd, clock() + min(grace, 2.0), clock):
            return
        raise _busy(name, path, "is held and its holder cannot be identified safely; not killed:", started, clock)
    if holder.pid == os.getpid():
        raise _busy(name, path, "is held by this very process", started, clock)
    try:
        os.kill(holder.pid, signal.SIGTERM)  # stepflow run forwards it to its command's group
    except ProcessLookupError:
        pass
    except PermissionError:
        raise _busy(name, path, "is held, and this user may not stop,", started, clock) from None
    if _wait(fd, clock() + grace, clock):
        return
    if procs.is_alive(holder.pid, holder.pid_started):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(holder.pid, signal.SIGKILL)
        if holder.command_pgid and holder.command_pgid != os.getpgid(0):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(holder.command_pgid, signal.SIGKILL)
    if not _wait(fd, clock() + max(grace, 5.0), clock):
        raise _busy(name, path, "was still held after SIGTERM and SIGKILL by", started, clock)


def _user() -> str:
    """The login name, as getpass.getuser() finds it (without importing getpass: start-up time)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if os.environ.get(name):
            return os.environ[name]
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())

"""Spawn the command in its own process group, stream its output, pass signals on, reap it.

Read-only with respect to the store: the supervisor knows nothing of steps or SQLite. It hands
every chunk it reads to `on_output` and returns how the command ended.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import sys
import termios
import time
from collections.abc import Callable, Iterator, Sequence

from stepflow.errors import CommandNotExecutableError, CommandNotFoundError, ExitStatus
from stepflow.record import record
from stepflow.run import signals
from stepflow.run.spawn import DEVNULL, PIPE, Child, spawn

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any

READ_SIZE = 256 * 1024  # larger reads cost memory (a 1M-line run must stay near a small one's)
PIPE_SIZE = 1024 * 1024  # Linux's default cap for unprivileged processes (fs.pipe-max-size)
FORWARDED = (signals.SIGINT, signals.SIGTERM, signals.SIGHUP)
DRAIN_IDLE = 0.5  # after the command exits, stop recording pipes that stay open but quiet this long
DRAIN_MAX = 5.0  # ... or that a leftover background process keeps writing to for this long;
# then a detached `cat` reads them to their end (_hand_to_drainer): no SIGPIPE for the leftovers
WAKE_EVERY = 1.0  # the loop looks at the command at least this often (a SIGCHLD can be missed)
# A dead man's switch: it waits for a line on stdin; end of file without one means stepflow
# died (kill -9, OOM killer), and the command's group goes the way --timeout would end it.
# Armed before the command is spawned: the first line is the command's process group, the
# second "done" at a normal end; an end of file after the first means stepflow died.
WATCHDOG = (
    'trap "" HUP INT TERM; read -r pg || exit 0; read -r _ || { kill -TERM "-$pg" 2>/dev/null; sleep "$1";'
    ' kill -KILL "-$pg" 2>/dev/null; }'
)

OutputHandler = Callable[[int, bytes], None]  # (stream 1|2, data)


@record
class Outcome:
    """How the command ended."""

    returncode: int  # as subprocess reports it: negative for "killed by signal N"
    exit_status: int  # what stepflow exits with (errors.ExitStatus; README, "exit status")
    timed_out: bool = False
    interrupted: int | None = None  # the signal stepflow received and passed on, if any
    stopped: bool = False  # ended by request_stop (a failed stop_on_error step)
    cpu_seconds: float | None = None
    crashed: str | None = None  # stepflow itself failed while following the command (not its exit)


class Supervisor:
    """Runs one command to its end. Call `run`; `request_stop` and `close_stream` may be called
    from its `on_output` (or from another thread while it runs)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
        kill_grace: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_spawn: Callable[[int], None] = lambda _pid: None,
    ) -> None:
        self.argv = list(argv)
        self.on_spawn = on_spawn  # told the command's pid (= its process group) once it runs
        self.cwd = cwd
        self.env = env
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.clock = clock
        self.pid: int | None = None
        self._stop_at: float | None = None
        self._kill_at: float | None = None
        self._stopped = False
        self._timed_out = False
        self._interrupted: int | None = None
        self._signals: list[int] = []
        self._closing: set[int] = set()

    def close_stream(self, stream: int) -> None:
        """Stop reading stream 1 or 2 and close it, so the command's next write fails (SIGPIPE)."""
        self._closing.add(stream)

    def request_stop(self) -> None:
        """End the command: SIGTERM to its process group now, SIGKILL after the grace period."""
        if not self._stopped and not self._timed_out:
            self._stopped = True
            self._terminate()

    def _terminate(self) -> None:
        self._signal_group(signals.SIGTERM)
        self._kill_at = self.clock() + self.kill_grace

    def _signal_group(self, sig: int) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def _spawn(self) -> Child:
        try:
            return spawn(self.argv, **self._stdio(), cwd=self.cwd, env=self.env)
        except FileNotFoundError as exc:
            raise CommandNotFoundError(f"command not found: {self.argv[0]}") from exc
        except PermissionError as exc:
            raise CommandNotExecutableError(f"{self.argv[0]}: permission denied") from exc
        except OSError as exc:
            if exc.errno in (errno.ENOEXEC, errno.EISDIR, errno.ENOTDIR, errno.EACCES):
                raise CommandNotExecutableError(
                    f"{self.argv[0]}: cannot execute: {exc.strerror}") from exc
            raise

    def _stdio(self) -> dict[str, Any]:
        """The command's stdio (stepflow.run.pty gives it a pseudo-terminal instead)."""
        return {"stdout": PIPE, "stderr": PIPE}

    def _outputs(self, proc: Child) -> dict[int, int]:
        """The fds to read, each with its stream number (1, 2); ours to close."""
        assert proc.stdout is not None and proc.stderr is not None
        return {proc.stdout: 1, proc.stderr: 2}

    def _read(self, fd: int) -> bytes:
        return os.read(fd, READ_SIZE)

    def run(self, on_output: OutputHandler) -> Outcome:
        """Spawn, hand every chunk read to `on_output` until the command exits and its pipes
        drain, and return its Outcome. An exception from `on_output` ends the loop (the command
        is left running, its pipes closed) and is raised.

        Raises:
            CommandNotFoundError, CommandNotExecutableError: nothing was started.
        """
        # Each call is one attempt (--retry runs the command again through the same supervisor).
        self._stop_at = self._kill_at = self._interrupted = None
        self._stopped = self._timed_out = False
        with _signals_to_fd(FORWARDED + (signals.SIGCHLD,), self._signals.append) as wake_fd, \
                _watchdog(self.kill_grace) as arm:
            proc = self._spawn()
            arm(proc.pid)  # from here a kill -9 of stepflow ends the command too
            self.pid = proc.pid
            self.on_spawn(proc.pid)
            with _terminal_foreground(proc.pid):
                return self._loop(proc, wake_fd, on_output)

    def _loop(self, proc: Child, wake_fd: int, on_output: OutputHandler) -> Outcome:
        sel = select.poll()  # not selectors: it costs ~2 ms of imports at start-up (issue 17)
        streams = self._outputs(proc)
        unclosed = set(streams)
        for fd in streams:
            os.set_blocking(fd, False)
            _widen_pipe(fd)
            sel.register(fd, select.POLLIN)
        sel.register(wake_fd, select.POLLIN)
        start = self.clock()
        if self.timeout is not None:
            self._stop_at = start + self.timeout
        status: tuple[int, float | None] | None = None
        exited_at = quiet_since = 0.0
        owed: dict[int, int] = {}  # bytes in each pipe when the command exited: always read
        try:
            while True:
                now = self.clock()
                if status is None:
                    status = _reap(proc.pid)
                    if status is not None:
                        exited_at = quiet_since = now
                        owed = {fd: _buffered(fd) for fd in streams}
                if status is not None and (not streams or (
                    not any(owed.get(fd, 0) > 0 for fd in streams)
                    and (now - quiet_since >= DRAIN_IDLE or now - exited_at >= DRAIN_MAX)
                )):
                    break  # ended and drained; or what is left comes from a process it left behind
                self._check_deadlines(now, running=status is None)
                for fd, _ in sel.poll(1000 * self._wait(now, status is not None, quiet_since, exited_at)):
                    if fd == wake_fd:
                        self._drain_wakeups(wake_fd)
                        continue
                    try:
                        data = self._read(fd)
                    except BlockingIOError:
                        continue
                    except OSError as exc:  # a pty's master reads EIO once the command closed it
                        if exc.errno != errno.EIO:
                            raise
                        data = b""
                    if not data:
                        sel.unregister(fd)
                        del streams[fd]
                        continue
                    owed[fd] = owed.get(fd, 0) - len(data)
                    on_output(streams[fd], data)
                    quiet_since = self.clock()  # after the work: handling output is not idling
                    if streams[fd] in self._closing:
                        sel.unregister(fd)
                        del streams[fd]
                        os.close(fd)
                        unclosed.discard(fd)
        finally:
            left = [fd for fd, stream in streams.items() if stream not in self._closing]
            if status is not None and left:
                _hand_to_drainer(left)
            for fd in unclosed:
                os.close(fd)
        returncode, cpu = status
        return Outcome(
            returncode=returncode, exit_status=self._exit_status(returncode),
            timed_out=self._timed_out, interrupted=self._interrupted, stopped=self._stopped,
            cpu_seconds=cpu,
        )

    def _wait(self, now: float, exited: bool, quiet_since: float, exited_at: float) -> float:
        deadlines = [d for d in (self._stop_at, self._kill_at) if d is not None]
        if exited:
            deadlines += [quiet_since + DRAIN_IDLE, exited_at + DRAIN_MAX]
        wait = min(deadlines) - now if deadlines else WAKE_EVERY
        return max(0.0, min(wait, WAKE_EVERY))

    def _check_deadlines(self, now: float, *, running: bool) -> None:
        if not running:
            return
        if self._stop_at is not None and now >= self._stop_at and not self._timed_out:
            self._timed_out = True
            self._stop_at = None
            if not self._stopped:
                self._terminate()
        if self._kill_at is not None and now >= self._kill_at:
            self._kill_at = None
            self._signal_group(signals.SIGKILL)

    def _drain_wakeups(self, wake_fd: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(wake_fd, 512):
                pass
        pending, self._signals[:] = list(self._signals), []
        for sig in pending:
            if sig == signals.SIGCHLD:
                continue
            if self._interrupted is None:
                self._interrupted = sig
                self._signal_group(sig)
            else:  # asked twice: the user means it
                self._signal_group(signals.SIGKILL)

    def _exit_status(self, returncode: int) -> int:
        if self._timed_out:
            return ExitStatus.TIMEOUT
        if self._interrupted == signals.SIGINT:
            return ExitStatus.CTRL_C
        if self._interrupted is not None:
            return ExitStatus.SIGNAL_BASE + self._interrupted
        return returncode if returncode >= 0 else ExitStatus.SIGNAL_BASE - returncode


def _hand_to_drainer(fds: list[int]) -> None:
    """Processes the command left behind still hold its pipes: give their read ends to a
    detached `cat` that discards what they write until they close them. Closing our read end
    instead would SIGPIPE them at their next write, because of stepflow alone."""
    for fd in fds:
        try:
            os.set_blocking(fd, True)  # the flag belongs to the open pipe, which cat now shares
            spawn(["cat"], stdin=fd, stdout=DEVNULL, stderr=DEVNULL, new_session=True)
        except OSError:
            pass  # no cat to be had: as before, their next write ends them


def _buffered(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD)."""
    try:  # a bytes buffer, not array.array: `array` costs ~2 ms to load at start-up (issue 17)
        count = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int.from_bytes(count, sys.byteorder, signed=True)


def _widen_pipe(fd: int) -> None:
    """A 1 MiB pipe instead of 64 KiB: a fast command blocks less, and we read in big chunks."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def _reap(pid: int) -> tuple[int, float | None] | None:
    """(returncode, CPU seconds of the command and its waited-for children) once it has exited.

    wait4's ru_maxrss is not used: it starts from stepflow's own peak at spawn (the child
    begins as a copy of stepflow), so peak memory comes from stepflow.run.resources' samples.
    """
    try:
        got, wait_status, usage = os.wait4(pid, os.WNOHANG)
    except ChildProcessError:
        return (-signals.SIGKILL, None)
    if got == 0:
        return None
    return os.waitstatus_to_exitcode(wait_status), usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def _signals_to_fd(watched: Sequence[int], record: Callable[[int], None]) -> Iterator[int]:
    """Note each signal with `record` and wake a selector through a pipe; restore on exit."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    old_fd = signals.set_wakeup_fd(w, warn_on_full_buffer=False)
    previous = {sig: signals.signal(sig, lambda s, _f: record(s)) for sig in watched}
    try:
        yield r
    finally:
        for sig, handler in previous.items():
            signals.signal(sig, handler)
        signals.set_wakeup_fd(old_fd)
        os.close(r)
        os.close(w)


@contextlib.contextmanager
def _watchdog(grace: float) -> Iterator[Callable[[int], None]]:
    """If stepflow dies before this block ends, end the command's process group too.

    Started before the command, so no moment of the command's life is unwatched: the block
    gets `arm(pgid)` to call once the command is spawned. A job whose supervisor is gone would
    run on unwatched and unrecorded, with nowhere to write its output; a cron user would
    rather have it stopped, as --timeout stops it.
    """
    read_end, write_end = os.pipe()
    try:
        # in its own process group: out of the terminal's reach, a hangup must not kill it
        dog = spawn(["/bin/sh", "-c", WATCHDOG, "stepflow-watchdog", f"{grace:g}"],
                    stdin=read_end, stdout=DEVNULL, stderr=DEVNULL)
    except OSError:
        os.close(write_end)
        yield lambda _pgid: None
        return
    finally:
        os.close(read_end)
    armed = False

    def arm(pgid: int) -> None:
        nonlocal armed
        with contextlib.suppress(OSError):
            os.write(write_end, f"{pgid}\n".encode())
            armed = True

    try:
        yield arm
    finally:
        with contextlib.suppress(OSError):
            if armed:
                os.write(write_end, b"done\n")
        os.close(write_end)
        _reap_within(dog.pid, 2.0)


@contextlib.contextmanager
def _terminal_foreground(pgid: int) -> Iterator[None]:
    """Give the terminal to the command's process group while it runs, as a shell does.

    The command has its own process group (so a timeout can end its whole tree); without
    this, a command that reads the terminal (a password prompt, `read -p`) would be stopped
    by SIGTTIN, and Ctrl-C would reach stepflow only.
    """
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        yield
        return
    try:
        if os.tcgetpgrp(fd) != os.getpgrp():
            yield
            return
        with _sigttou_blocked():
            try:
                os.tcsetpgrp(fd, pgid)
            except OSError:
                yield
                return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signals.SIGCONT)  # in case it read the terminal before it was its own
        try:
            yield
        finally:
            with _sigttou_blocked(), contextlib.suppress(OSError):
                os.tcsetpgrp(fd, os.getpgrp())
    finally:
        os.close(fd)


@contextlib.contextmanager
def _sigttou_blocked() -> Iterator[None]:
    old = signals.pthread_sigmask(signals.SIG_BLOCK, {signals.SIGTTOU})
    try:
        yield
    finally:
        signals.pthread_sigmask(signals.SIG_SETMASK, old)


def _reap_within(pid: int, seconds: float) -> None:
    """Wait up to `seconds` for a child that is about to exit (else it is reaped at our exit)."""
    deadline = time.monotonic() + seconds
    pause = 0.0005
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] != 0:
                return
        except ChildProcessError:
            return
        if time.monotonic() >= deadline:
            return
        time.sleep(pause)
        pause = min(pause * 2, 0.05)

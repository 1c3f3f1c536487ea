"""`run --pty`: the supervisor's spawn and stream part with a pseudo-terminal for the command.

The command's stdout and stderr are the slave side of a new pty (so it line-buffers and keeps
its colours and progress bars), one stream: stepflow reads it from the master as stream 1 and
passes the bytes to the view unchanged. Its stdin is stepflow's, unless that is a terminal:
then it is the pty too (keys typed are not passed on), because a command reading the user's
terminal from its own process group would be stopped by SIGTTIN. stepflow keeps the user's
terminal in the foreground, so Ctrl-C and resizes (SIGWINCH) reach stepflow, which passes them
on: a signal to the command's process group, the new size to the pty (and SIGWINCH to the
group, since the pty is not its controlling terminal). Everything else (timeouts, signals,
reaping, the watchdog) is the plain Supervisor's.

What is stored is the text without escape sequences (`Stripped`, in front of the line
splitter), so markers, `logs`, JUnit and the dashboard read plain text.
"""

from __future__ import annotations

import os

from stepflow import ptyio
from stepflow.run import signals
from stepflow.run.spawn import Child
from stepflow.run.supervisor import FORWARDED, READ_SIZE, Outcome, OutputHandler, Supervisor, _signals_to_fd, _watchdog
from stepflow.typenames import Protocol

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SIZE = (24, 80)  # the size a pty gets when stepflow runs on no terminal (cron, CI)


def terminal_fd() -> int | None:
    """The first of stdout, stderr, stdin that is a terminal with a size: the pty follows it."""
    for fd in (1, 2, 0):
        size = ptyio.window_size(fd)
        if size is not None and size != (0, 0):
            return fd
    return None


class PtySupervisor(Supervisor):
    """A Supervisor whose command writes to a pseudo-terminal (see the module docstring)."""

    def __init__(self, *args: object, size_from: int | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.size_from = terminal_fd() if size_from is None else size_from
        self._master: int | None = None
        self._slave: int | None = None

    def _stdio(self) -> dict[str, Any]:
        master, slave = ptyio.open_pty(like=self.size_from)
        if ptyio.window_size(slave) in (None, (0, 0)):
            ptyio.set_window_size(slave, *DEFAULT_SIZE)
        self._master, self._slave = master, slave
        stdin = slave if _isatty(0) else None
        return {"stdin": stdin, "stdout": slave, "stderr": slave}

    def _spawn(self) -> Child:
        try:
            return super()._spawn()
        except BaseException:
            if self._master is not None:
                os.close(self._master)
                self._master = None
            raise
        finally:
            if self._slave is not None:  # the command has its copies: the master reads EIO once they close
                os.close(self._slave)
                self._slave = None

    def _outputs(self, proc: Child) -> dict[int, int]:
        assert self._master is not None
        return {self._master: 1}

    def _read(self, fd: int) -> bytes:
        """As much as is there, up to READ_SIZE: a pty hands out at most 4 KiB a read, and each
        chunk costs the same Python work whatever its size."""
        data = os.read(fd, READ_SIZE)  # BlockingIOError, EIO: the loop's to handle
        chunks, total = [data], len(data)
        while data and total < READ_SIZE:
            try:
                data = os.read(fd, READ_SIZE - total)
            except OSError:  # nothing more now (EAGAIN), or the end (EIO, seen again next read)
                break
            chunks.append(data)
            total += len(data)
        return b"".join(chunks) if len(chunks) > 1 else chunks[0]

    def run(self, on_output: OutputHandler) -> Outcome:
        """As Supervisor.run, with the pty; the user's terminal stays stepflow's."""
        self._stop_at = self._kill_at = self._interrupted = None  # one attempt each call (--retry)
        self._stopped = self._timed_out = False
        with _signals_to_fd(FORWARDED + (signals.SIGCHLD, signals.SIGWINCH), self._signals.append) as wake_fd, \
                _watchdog(self.kill_grace) as arm:
            proc = self._spawn()
            arm(proc.pid)
            self.pid = proc.pid
            self.on_spawn(proc.pid)
            return self._loop(proc, wake_fd, on_output)

    def _drain_wakeups(self, wake_fd: int) -> None:
        if signals.SIGWINCH in self._signals:
            self._signals[:] = [s for s in self._signals if s != signals.SIGWINCH]
            self._resized()
        super()._drain_wakeups(wake_fd)

    def _resized(self) -> None:
        if self.size_from is None or self._master is None:
            return
        if ptyio.copy_window_size(self.size_from, self._master):
            self._signal_group(signals.SIGWINCH)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


class Feeder(Protocol):
    def pieces(self, stream: int, data: bytes) -> list[bytes]: ...

    def feed(self, stream: int, data: bytes) -> None: ...

    def close(self) -> None: ...


class Stripped:
    """In front of the line splitter: the pty's output without escapes, CR LF as LF."""

    def __init__(self, splitter: Feeder) -> None:
        self.splitter = splitter
        self.stripper = ptyio.EscapeStripper()

    def pieces(self, stream: int, data: bytes) -> list[bytes]:
        """As LineSplitter.pieces, on the bytes as the pty gave them (only where they are cut)."""
        return self.splitter.pieces(stream, data)

    def feed(self, stream: int, data: bytes) -> None:
        text = self.stripper.feed(data)
        if text:
            self.splitter.feed(stream, text)

    def close(self) -> None:
        if tail := self.stripper.flush():
            self.splitter.feed(1, tail)
        self.splitter.close()

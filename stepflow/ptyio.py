"""Pseudo-terminal plumbing for `run --pty`: open a pair sized like the user's terminal, keep
the size following it (SIGWINCH), read the master side, and strip terminal escapes from what
is stored.

The command gets the slave side as stdin/stdout/stderr, so it line-buffers and keeps its
colours and progress bars (stdout and stderr are one stream then); stepflow reads the master
side, passes the bytes to the screen unchanged and stores them through an `EscapeStripper`.
Nothing here spawns or waits: the supervisor does that. Linux and macOS only (termios).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import signal
import struct
import termios
from collections.abc import Iterator
from types import FrameType

_WINSIZE = struct.Struct("HHHH")  # rows, columns, x pixels, y pixels


def window_size(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on `fd`, None when it is not a terminal."""
    try:
        rows, columns, _, _ = _WINSIZE.unpack(fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * _WINSIZE.size))
    except OSError:
        return None
    return rows, columns


def set_window_size(fd: int, rows: int, columns: int) -> None:
    """Give the terminal on `fd` this size (the kernel tells its foreground group: SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, _WINSIZE.pack(rows, columns, 0, 0))


def copy_window_size(source: int, target: int) -> bool:
    """Size the terminal on `target` like the one on `source`; False when `source` is no
    terminal or has no size yet (0x0), leaving `target` as it was."""
    size = window_size(source)
    if size is None or size == (0, 0):
        return False
    try:
        set_window_size(target, *size)
    except OSError:
        return False
    return True


def open_pty(*, like: int | None = None) -> tuple[int, int]:
    """A new (master, slave) pair, both close-on-exec (pass the slave to the child as its
    stdio: dup2 clears the flag), sized like the terminal on `like` when it is one."""
    master, slave = os.openpty()
    if like is not None:
        copy_window_size(like, slave)
    return master, slave


@contextlib.contextmanager
def forward_window_size(source: int, master: int) -> Iterator[bool]:
    """While inside, each SIGWINCH (the user resized their terminal) sizes the pty on
    `master` like `source`, and the kernel passes the change on to the command. Yields False,
    and does nothing, when signals cannot be handled here (not the main thread) or `source`
    is no terminal. The previous handler is put back on the way out."""
    if window_size(source) is None:
        yield False
        return

    def resized(signum: int, frame: FrameType | None) -> None:
        copy_window_size(source, master)

    try:
        previous = signal.signal(signal.SIGWINCH, resized)
    except ValueError:  # not the main thread
        yield False
        return
    try:
        yield True
    finally:
        signal.signal(signal.SIGWINCH, previous)


def read_master(fd: int, size: int = 256 * 1024) -> bytes:
    """Read what the command wrote; b"" at its end. Linux reports a master whose slave is
    closed everywhere as EIO, not as end of file: both mean the command is done writing."""
    try:
        return os.read(fd, size)
    except OSError as error:
        if error.errno == errno.EIO:
            return b""
        raise


# CSI (colours, cursor moves, erase), OSC (titles, hyperlinks) ended by BEL or ST, DCS/SOS/PM/APC
# strings ended by ST, charset designation, and the two-byte escapes (keypad, save/restore).
_ESCAPE_RE = re.compile(
    rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[()*+][ -~]|[ -/]*[0-~])"
)
# An escape that may still be completed by the next chunk.
_PARTIAL_RE = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[PX^_][^\x1b]*\x1b?|[()*+]|[ -/]*)?\Z")
_CRS_LF_RE = re.compile(rb"\r+\n")
_MAX_PENDING = 4096  # an escape longer than this is not one: pass it on as text


class EscapeStripper:
    """Terminal escapes out of a byte stream fed in chunks of any size, for storage.

    Also turns the CR LF the pty's line discipline writes back into LF, and drops BEL. A
    bare CR (a progress bar redrawing its line) is kept: the log keeps each redraw as it came.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        """The stripped text of `data`, holding back a trailing escape (or CR) not yet complete."""
        data = self._pending + data
        self._pending = b""
        if b"\x1b" not in data and b"\r" not in data and b"\x07" not in data:
            return data
        partial = _PARTIAL_RE.search(data, max(0, len(data) - _MAX_PENDING))
        if partial is not None and partial.start() < len(data):
            data, self._pending = data[: partial.start()], data[partial.start() :]
        elif data.endswith(b"\r"):  # CRs that an LF may follow: held back until it does or not
            kept = data.rstrip(b"\r")
            data, self._pending = kept, data[len(kept):]
        return _clean(data)

    def flush(self) -> bytes:
        """What is held back, at the end of the stream (an unfinished escape is dropped)."""
        pending, self._pending = self._pending, b""
        return pending if pending and not pending.strip(b"\r") else b""


def _clean(data: bytes) -> bytes:
    if b"\x1b" in data:
        # an ESC left over began no sequence a terminal would finish (another ESC cut it): not text
        data = _ESCAPE_RE.sub(b"", data).replace(b"\x1b", b"")
    if b"\r\n" in data:  # the line discipline's CR LF, and any CRs before it, end a line
        data = _CRS_LF_RE.sub(b"\n", data)
    if b"\x07" in data:
        data = data.replace(b"\x07", b"")
    return data


def strip_escapes(data: bytes) -> bytes:
    """`data` (a whole stream) as EscapeStripper stores it."""
    stripper = EscapeStripper()
    return stripper.feed(data) + stripper.flush()

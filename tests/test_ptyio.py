"""ptyio on real pseudo-terminals: sizes, SIGWINCH forwarding, reading a child, escapes out."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import pytest
from conftest import wait_for
from hypothesis import given
from hypothesis import strategies as st

from stepflow.ptyio import (
    EscapeStripper,
    copy_window_size,
    forward_window_size,
    open_pty,
    read_master,
    set_window_size,
    strip_escapes,
    window_size,
)


@pytest.fixture
def terminal() -> tuple[int, int]:
    """A pty pair standing in for the user's terminal, 40 rows by 132 columns."""
    master, slave = os.openpty()
    set_window_size(slave, 40, 132)
    yield master, slave
    os.close(master)
    os.close(slave)


def test_open_pty_copies_the_size(terminal: tuple[int, int]) -> None:
    _, user = terminal
    master, slave = open_pty(like=user)
    try:
        assert window_size(slave) == (40, 132)
        assert os.isatty(slave) and not os.get_inheritable(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_no_terminal_no_size(tmp_path: object) -> None:
    read, write = os.pipe()
    try:
        assert window_size(read) is None
        master, slave = open_pty(like=read)
        os.close(master)
        os.close(slave)
        assert copy_window_size(read, write) is False
    finally:
        os.close(read)
        os.close(write)


def test_sigwinch_sizes_the_pty_like_the_terminal(terminal: tuple[int, int]) -> None:
    _, user = terminal
    master, slave = open_pty(like=user)
    before = signal.getsignal(signal.SIGWINCH)
    try:
        with forward_window_size(user, master) as forwarding:
            assert forwarding
            set_window_size(user, 50, 100)
            os.kill(os.getpid(), signal.SIGWINCH)
            assert wait_for(lambda: window_size(slave) == (50, 100))
        assert signal.getsignal(signal.SIGWINCH) == before
    finally:
        os.close(master)
        os.close(slave)


def test_forwarding_is_a_no_op_off_the_main_thread(terminal: tuple[int, int]) -> None:
    _, user = terminal
    results: list[bool] = []

    def run() -> None:
        with forward_window_size(user, user) as forwarding:
            results.append(forwarding)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert results == [False]


def test_a_child_on_the_pty_sees_a_terminal_of_that_size(terminal: tuple[int, int]) -> None:
    _, user = terminal
    master, slave = open_pty(like=user)
    code = ("import os, sys; s = os.get_terminal_size(1); "
            "print(os.isatty(1), os.isatty(2), s.lines, s.columns); print('\\x1b[31mred\\x1b[0m', file=sys.stderr)")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    data = b""
    while chunk := read_master(master):
        data += chunk
    os.close(master)
    assert child.wait(timeout=60) == 0
    assert data == b"True True 40 132\r\n\x1b[31mred\x1b[0m\r\n"  # one stream, CR LF from the line discipline
    assert strip_escapes(data) == b"True True 40 132\nred\n"


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (b"plain\n", b"plain\n"),
        (b"\x1b[1;31mbold red\x1b[0m\r\n", b"bold red\n"),
        (b"\x1b]0;window title\x07text", b"text"),
        (b"\x1b]8;;https://x.example\x1b\\link\x1b]8;;\x1b\\", b"link"),
        (b"\x1b(B\x1b=\x1b>\x1b7\x1b8ok", b"ok"),
        (b"\x1bPq#0;2;0;0;0\x1b\\after", b"after"),
        (b" 10%\r 50%\r100%\r\n", b" 10%\r 50%\r100%\n"),
        (b"\x1b[2K\x1b[1Gline", b"line"),
        (b"bell\x07", b"bell"),
        (b"\x1b[?25l\x1b[?25h", b""),
        (b"unfinished \x1b[31", b"unfinished "),
        (b"trailing cr\r", b"trailing cr\r"),
    ],
)
def test_strip_escapes(raw: bytes, stored: bytes) -> None:
    assert strip_escapes(raw) == stored


PIECES = [b"\x1b[", b"31", b";", b"m", b"\x1b]", b"0;t", b"\x07", b"\x1b\\", b"\x1b", b"\r", b"\n", b"\r\n", b"text",
          b"(", b"B", b"?25l", b"P", b"\x07", b"%"]


@given(st.lists(st.sampled_from(PIECES) | st.binary(max_size=4), max_size=30).map(b"".join), st.data())
def test_any_split_of_the_stream_stores_the_same(data: bytes, draw: st.DataObject) -> None:
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=6)))
    stripper = EscapeStripper()
    out = b""
    start = 0
    for cut in [*cuts, len(data)]:
        out += stripper.feed(data[start:cut])
        start = cut
    out += stripper.flush()
    assert out == strip_escapes(data)
    assert re.search(rb"\x1b[\x20-\x7e]", out) is None  # no escape sequence survives, whatever the bytes
    assert b"\r\n" not in out


def test_crs_before_a_line_feed_end_the_line_however_the_stream_is_cut() -> None:
    assert strip_escapes(b"a\r\r\nb\r") == b"a\nb\r"
    stripper = EscapeStripper()
    assert stripper.feed(b"a\r") + stripper.feed(b"\r") + stripper.feed(b"\nb") + stripper.flush() == b"a\nb"

"""A real terminal for tests: a tmux server of the test's own, whose screen is read back as a
person would see it (`capture-pane`). Tests using it skip when tmux is not installed."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


class Screen:
    """One tmux session of `cols` x `rows` running a shell, on a private socket."""

    def __init__(self, folder: Path, *, cols: int = 80, rows: int = 24) -> None:
        if shutil.which("tmux") is None:
            pytest.skip("tmux is not installed (apt-get install tmux)")
        self.socket = str(folder / "tmux.sock")
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "COLUMNS", "LINES", "NO_COLOR")}
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        env["PS1"] = "$ "
        rc = folder / "bashrc"
        rc.write_text("PS1='$ '\n")
        self._tmux("new-session", "-d", "-x", str(cols), "-y", str(rows),
                   f"env TERM=xterm-256color bash --noprofile --rcfile {shlex.quote(str(rc))}", env=env)
        self.wait_for(lambda s: s.rstrip().endswith("$"), what="the shell's prompt")

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], check=True, capture_output=True,
                              text=True, env=env, timeout=30).stdout

    def type(self, text: str, *, enter: bool = True) -> None:
        self._tmux("send-keys", "-l", text)
        if enter:
            self._tmux("send-keys", "Enter")

    def key(self, name: str) -> None:
        self._tmux("send-keys", name)

    def text(self) -> str:
        return self._tmux("capture-pane", "-p")

    def wait_for(self, predicate: Callable[[str], bool], *, what: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.text()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what} on the screen:\n{screen}")
            time.sleep(0.05)

    def wait_for_text(self, needle: str, *, timeout: float = 30.0) -> str:
        return self.wait_for(lambda s: needle in s, what=repr(needle), timeout=timeout)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=30)

"""What every view is (the View protocol) and what it may know of the terminal (Terminal)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from stepflow.events import Event
from stepflow.record import record
from stepflow.state import RunState
from stepflow.typenames import Protocol

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)


class View(Protocol):
    """What a run shows while it happens (plain, quiet, json, live): a sink of the run's events,
    plus the command's raw output, stepflow's own problems and the closing summary."""

    def handle(self, event: Event) -> None:
        """One event of the run (stepflow.events); kinds a view does not draw are ignored."""
        ...

    def raw(self, stream: int, data: bytes) -> bool:
        """The command's output as read (masked); False once whoever reads `stream` has gone,
        so the command's pipe is closed too, as a shell pipeline would (`... | head -1`)."""
        ...

    def problem(self, message: str) -> None:
        """stepflow's own trouble (the store is locked, output was lost): never silent."""
        ...

    def finish(self, state: RunState) -> None:
        """The run is over and fully recorded: the summary."""
        ...


@record(frozen=True)
class Terminal:
    """The terminal facts, read once (`detect`) and passed down; tests build their own.

    `stdout_tty`/`stderr_tty`: whether each is a terminal; `color`: colours wanted (no
    --no-color, no NO_COLOR); `dumb`: TERM=dumb, a terminal that cannot redraw in place;
    `width`: stderr's columns when it is a terminal (None otherwise; Rich follows resizes)."""

    stdout_tty: bool = False
    stderr_tty: bool = False
    color: bool = True
    dumb: bool = False
    width: int | None = None

    @classmethod
    def detect(cls, *, no_color: bool = False, env: Mapping[str, str] | None = None,
               stdout_fd: int = 1, stderr_fd: int = 2) -> Terminal:
        env = os.environ if env is None else env
        stderr_tty = _isatty(stderr_fd)
        width = None
        if stderr_tty:
            try:
                width = os.get_terminal_size(stderr_fd).columns
            except OSError:
                width = None
        return cls(stdout_tty=_isatty(stdout_fd), stderr_tty=stderr_tty,
                   color=not no_color and "NO_COLOR" not in env, dumb=env.get("TERM") == "dumb", width=width)

    @property
    def live(self) -> bool:
        """Whether `--output auto` draws the live view: stderr a terminal that can redraw."""
        return self.stderr_tty and not self.dumb


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False

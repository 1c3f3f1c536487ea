"""The live view: a Rich display of the run, redrawn ~10 times a second from the run's model.

Three threads, none waiting on the others:
- the reader (the runner's loop) only updates the model: RunState, its `tail` of recent lines
  and this view's step counts. It never renders, so a slow terminal cannot slow the command;
- Rich's refresh thread (`Live(get_renderable=..., auto_refresh=True)`) calls the pure
  `render_run` over that model and draws it;
- a setup thread imports Rich (tens of ms) and then reads the ETA hints from the store, so
  neither delays the command's start.

The display goes to stderr, the terminal `--output auto` checked. It is transient: when the
run ends it is replaced by a summary table printed once, with where the logs and artifacts
are. The command's output is shown in the tail, not passed through, except that when stdout
is not a terminal (`stepflow run -- cmd > out.txt`) the command's stdout still goes there
byte for byte.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from stepflow import events as ev
from stepflow import fmt
from stepflow.hints import NO_HINTS, Hints
from stepflow.state import RunState
from stepflow.views.base import Terminal
from stepflow.views.plain import write_all

REFRESH_PER_SECOND = 10
SETUP_WAIT = 5.0  # seconds finish() waits for a display that is still being set up
STATUSES = ("running", "completed", "failed", "pending", "skipped")
PROMPT_QUIET = 0.3  # seconds a partial line (no newline, no `\r`) waits before it is taken for a prompt
READ_QUIET = 0.15  # seconds of quiet before looking whether the command reads the terminal
PAUSE_CONTEXT = 10  # latest output lines written out above a prompt
ECHO_ROOM = 3  # columns left free at the right of the frame, for the terminal's echo of ^C
PARTIAL_KEEP = 4096  # bytes of a pending partial line kept for the screen


class LiveView:
    """A View (stepflow.views.base.View) drawing the run with Rich `Live`.

    `terminal` is what stepflow's terminal is (colours; whether stdout is a terminal, else the
    command's stdout is passed through); `hints` loads the ETA hints of earlier runs of a name
    (on the set-up thread); `artifacts` is the store's artifact folder, named in the summary.
    """

    def __init__(
        self,
        *,
        terminal: Terminal | None = None,
        hints: Callable[[str], Hints] | None = None,
        artifacts: str | None = None,
        console: Any = None,
        clock: Callable[[], float] = time.time,
        out_fd: int = 1,
        refresh_per_second: float = REFRESH_PER_SECOND,
    ) -> None:
        terminal = terminal or Terminal.detect(stdout_fd=out_fd)
        self.color = terminal.color
        self.clock = clock
        self.refresh_per_second = refresh_per_second
        self.hints: Hints = NO_HINTS
        self.problems: list[str] = []
        # Every key present from the start: the drawing thread may read while the reader counts.
        self.counts: Counter[str] = Counter(dict.fromkeys(STATUSES, 0))
        self.state: RunState | None = None
        self._console = console
        self._unicode = True
        self._keep = 60  # tail lines worth splitting out of a block: about a screen
        self._out_fd = out_fd
        self._passthrough = not terminal.stdout_tty
        self.gone: set[int] = set()  # our streams whose reader went away (`... | head`)
        self._live: Any = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._finished = False
        self._load_hints = hints
        self._artifacts_root = artifacts
        self._artifacts_dir: str | None = None
        # The partial line the command left on a stream shown here (a prompt, a `\r` progress
        # bar): drawn as the tail's last line; one that waits (`read -p`) pauses the display.
        self.partial: tuple[int, bytes] | None = None
        self._seq = 0  # chunks read so far: the prompt watcher sees new output by it
        self._raw_at = 0.0
        self._paused_at: int | None = None  # _seq when the display paused for a prompt
        self._shown_lines = 0  # output lines up to here were written out at a pause

    # -- set-up ----------------------------------------------------------------------------

    def start(self, state: RunState) -> None:
        self.state = state
        if self._artifacts_root is not None:
            self._artifacts_dir = os.path.join(self._artifacts_root, state.id)
        threading.Thread(target=self._begin, name="stepflow-live", daemon=True).start()

    def _begin(self) -> None:
        try:
            self._open_display()
        except Exception as exc:  # noqa: BLE001 - no display is no reason to stop the run
            self.problems.append(f"live view unavailable: {exc}")
        finally:
            self._ready.set()
        if self._load_hints is not None and self.state is not None:
            self.hints = self._load_hints(self.state.name)

    def _open_display(self) -> None:
        from rich.console import Console
        from rich.live import Live

        if self._console is None:
            self._console = Console(stderr=True, no_color=not self.color, highlight=False, markup=False,
                                    emoji=False)
        console = self._console
        self._unicode = (console.encoding or "").lower().startswith("utf")
        assert self.state is not None
        # About a screen (and some, for a window made taller later) of each block is kept.
        self._keep = max(1, min(self.state.tail.maxlen or 200, max(console.size.height, 60)))
        live = Live(console=console, get_renderable=self._frame, auto_refresh=True,
                    refresh_per_second=self.refresh_per_second, transient=True,
                    redirect_stdout=False, redirect_stderr=False)
        with self._lock:
            if self._finished:
                return
            live.start()
            self._live = live
        atexit.register(self._abort)
        threading.Thread(target=self._watch_prompts, name="stepflow-prompt", daemon=True).start()

    def _frame(self) -> Any:
        """What Rich's refresh thread draws: the pure render over a snapshot of the model."""
        from stepflow.views.render import render_run  # imported by the setup thread already

        state = self.state
        if state is None:
            return ""
        try:
            from rich.constrain import Constrain

            size = self._console.size
            # ECHO_ROOM columns stay free at the frame's right: what the terminal echoes there
            # (`^C`, a typed key) must not wrap, or the next redraw starts a line too low and
            # leaves the frame's top line behind.
            width = max(size.width - ECHO_ROOM, 10)
            return Constrain(render_run(
                state, now=self.clock(), hints=self.hints, problems=list(self.problems),
                height=size.height, width=width, counts=Counter(self.counts), unicode=self._unicode,
                partial=self.partial,
            ), width)
        except Exception as exc:  # noqa: BLE001 - a frame that cannot be drawn must not end the run
            from rich.text import Text

            return Text(f"stepflow: live view error: {exc}")

    # -- the reader's path: update the model only ------------------------------------------

    def raw(self, stream: int, data: bytes) -> bool:
        if stream == 2 or not self._passthrough:
            self._note_partial(stream, data)
        if stream != 1 or not self._passthrough:
            return True
        if 1 in self.gone:
            return False
        try:
            write_all(self._out_fd, data)
        except OSError:
            self.gone.add(1)  # execute closes the command's pipe too, as a shell pipeline would
            return False
        return True

    def _note_partial(self, stream: int, data: bytes) -> None:
        """Keep what follows the chunk's last newline (one rfind per chunk: the hot path)."""
        nl = data.rfind(b"\n")
        partial = self.partial
        if nl < 0:
            before = partial[1] if partial is not None and partial[0] == stream else b""
            self.partial = (stream, (before + data)[-PARTIAL_KEEP:])
        elif nl + 1 < len(data):
            self.partial = (stream, data[nl + 1 :][-PARTIAL_KEEP:])
        elif partial is not None:
            self.partial = None
        self._raw_at = time.monotonic()
        self._seq += 1

    # -- prompts: a partial line that waits is shown as the terminal would show it ----------

    def _watch_prompts(self) -> None:
        """Pause the display while the command waits at a prompt, resume on its next output.

        A prompt (`read -p "Deploy? "`, a password question) is a partial line followed by
        silence. Drawn inside the live frame it could not be answered in place, and the
        answer's echo (a newline) would push the frame's bookkeeping one line off. So the frame
        is erased, the prompt written where the cursor is, and the user types after it as
        without stepflow; the next output resumes the frame below the answered prompt.
        """
        tty = _tty_name()
        looked = 0.0
        while not self._finished:
            time.sleep(0.05)
            with self._lock:
                if self._finished or self._live is None and self._paused_at is None:
                    continue
                if self._paused_at is not None:
                    if self._seq != self._paused_at:
                        self._resume()
                    continue
                now = time.monotonic()
                quiet = now - self._raw_at
                partial = self.partial
                if partial is not None and b"\r" not in partial[1]:
                    if quiet >= PROMPT_QUIET:
                        self._pause(partial[1])
                elif tty is not None and quiet >= READ_QUIET and now - looked >= READ_QUIET:
                    # No prompt, but a quiet command may be reading the terminal (`read x`):
                    # the echo of the user's answer must not land inside the frame.
                    looked = now
                    if _reads_terminal(tty):
                        # a `\r` progress line left pending is shown as the terminal would show it
                        bar = b"" if partial is None else partial[1].rstrip(b"\r").rsplit(b"\r", 1)[-1]
                        self._pause(bar)

    def _pause(self, prompt: bytes) -> None:
        from stepflow.views.render import tail_text

        live, self._live = self._live, None
        self._paused_at = self._seq
        state = self.state
        try:
            live.stop()  # transient: the frame is erased and the cursor shown
            self._console.file.flush()
            # What the user answers is what the command just said: its latest lines (those
            # not written out at an earlier pause) stay on the screen, as without stepflow.
            if state is not None:
                count = min(state.lines - self._shown_lines, PAUSE_CONTEXT, len(state.tail))
                self._shown_lines = state.lines
                context = list(state.tail)[-count:] if count > 0 else []
                text = "".join(tail_text(data) + "\n" for _stream, data in context)
                write_all(2, text.encode("utf-8", "replace"))
            if prompt:
                write_all(2, prompt)
        except Exception:  # noqa: BLE001 - the terminal went away: the run goes on
            pass

    def _resume(self) -> None:
        from rich.live import Live

        self._paused_at = None
        try:
            # The answer's newline put the cursor on a fresh line (erasing it is harmless);
            # a partial line the command completed itself goes, as the tail shows it whole.
            write_all(2, b"\r\x1b[2K")
            live = Live(console=self._console, get_renderable=self._frame, auto_refresh=True,
                        refresh_per_second=self.refresh_per_second, transient=True,
                        redirect_stdout=False, redirect_stderr=False)
            live.start()
            self._live = live
        except Exception:  # noqa: BLE001 - no display is no reason to stop the run
            pass

    def handle(self, event: ev.Event) -> None:
        match event:
            case ev.LinesRead(stream=stream, data=data, count=count):
                self.lines(stream, data, count)
            case ev.RunStarted(state):
                self.start(state)
            case ev.StepStarted():
                self.counts["running"] += 1
            case ev.StepEnded(status=status) if status in self.counts:
                self.counts["running"] -= 1
                self.counts[status] += 1
            case ev.RunErrorRaised(_, message):
                self.problems.append(f"STEP_ERROR with no step running: {message}")

    def lines(self, stream: int, data: bytes, count: int) -> None:
        state = self.state
        if state is None:
            return
        if count == 1:
            state.tail.append((stream, data))
            return
        keep = self._keep
        # A read holds hundreds of lines; only the last screenful can ever be shown.
        parts = data.split(b"\n") if count <= keep else data.rsplit(b"\n", keep)[1:]
        state.tail.extend([(stream, part) for part in parts])

    def problem(self, message: str) -> None:
        if not self._finished:
            self.problems.append(message)
            return
        self._print_after(message)

    # -- the end ---------------------------------------------------------------------------

    def finish(self, state: RunState) -> None:
        self._ready.wait(SETUP_WAIT)
        with self._lock:
            self._finished = True
            live, self._live = self._live, None
            if self._paused_at is not None:
                self._paused_at = None
                try:
                    write_all(2, b"\r\x1b[2K")
                except OSError:
                    pass
        if live is not None:
            try:
                live.stop()  # transient: the moving part is erased, the summary replaces it
            except Exception:  # noqa: BLE001 - the terminal went away (closed, hung up): the run still ends
                pass
        console = self._console
        if console is None:
            from stepflow.views.plain import PlainView

            PlainView().finish(state)
            return
        from stepflow.views.render import render_summary

        try:
            console.print(render_summary(state, now=self.clock(), problems=list(self.problems),
                                         artifacts_dir=self._artifacts_dir, unicode=self._unicode,
                                         width=console.width))
        except Exception:  # noqa: BLE001 - as above: never fail the run for its summary
            pass

    def _print_after(self, message: str) -> None:
        """stepflow's own trouble after the display closed (e.g. what the store lost)."""
        try:
            write_all(2, f"stepflow: warning: {fmt.safe_text(message)}\n".encode("utf-8", "replace"))
        except OSError:
            pass

    def _abort(self) -> None:
        """At exit, if the run never finished (a crash): give the terminal its cursor back."""
        live, self._live = self._live, None
        if live is not None:
            try:
                live.stop()
            except Exception:  # noqa: BLE001 - best effort at interpreter exit
                pass



def _tty_name() -> str | None:
    """The terminal the display is on (stderr), as /proc/<pid>/fd names it."""
    try:
        return os.ttyname(2)
    except OSError:
        return None


def _reads_terminal(tty: str) -> bool:
    """Whether the terminal's foreground group (the command's, see run.supervisor) reads it."""
    from stepflow.procs import reads_terminal

    try:
        fd = os.open(tty, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        pgid = os.tcgetpgrp(fd)
    except OSError:
        return False
    finally:
        os.close(fd)
    return pgid != os.getpgrp() and reads_terminal(pgid, tty)

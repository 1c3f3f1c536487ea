"""The live view: the pure renderer with a fake clock, the view's model updates, and a real terminal."""

from __future__ import annotations

import io
import os
import re
import select
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from stepflow.config import load_settings
from stepflow.events import RunStarted, StepEnded, StepStarted
from stepflow.hints import NO_HINTS, Hints, hints_from_rows, load_hints
from stepflow.state import ArtifactState, RunState, StepState
from stepflow.store import NewRun, NewStep, StepDuration, open_store
from stepflow.views.live import LiveView
from stepflow.views.render import render_run, render_summary, tail_text
from tests.conftest import py

T0 = 1_000_000.0
RUN_ID = "1234abcd-0000-4000-8000-000000000000"
ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-B]|[=>78])")


def new_state(name: str = "deploy") -> RunState:
    return RunState(id=RUN_ID, name=name, command="bash deploy.sh", started=T0)


def add(state: RunState, name: str, start: float, *, end: float | None = None, status: str = "running",
        expected: float | None = None, error: str | None = None) -> StepState:
    step = StepState(index=state.step_count, id=f"s{state.step_count}", name=name, started=T0 + start,
                     status=status, ended=None if end is None else T0 + end, expected=expected, error=error)
    state.add_step(step)
    state.current = step if status == "running" else None
    return step


def draw(renderable: object, *, width: int = 80, height: int = 30) -> str:
    console = Console(file=io.StringIO(), width=width, height=height, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def frame(state: RunState, at: float, *, height: int = 30, **kwargs: object) -> str:
    return draw(render_run(state, now=T0 + at, height=height, width=80, **kwargs), height=height)  # type: ignore[arg-type]


def line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


# -- the frame -----------------------------------------------------------------------------


def test_steps_show_their_state_elapsed_time_and_eta() -> None:
    state = new_state()
    add(state, "build", 0, end=12, status="completed")
    add(state, "lint", 12, end=13, status="failed", error="2 problems")
    add(state, "release", 20, expected=30)
    hints = Hints(medians={"smoke": 5.0}, plan=(("build", 12.0), ("lint", 1.0), ("release", 30.0), ("smoke", 4.0)),
                  expected_steps=4)
    out = frame(state, 30, hints=hints)
    assert re.search(r"1\. build +completed +12\.0s", out)
    assert re.search(r"2\. lint +failed +1\.0s +2 problems", out)
    assert re.search(r"3\. release +running +10\.0s +~20\.0s left", out)  # [duration=30], 10 s in
    assert re.search(r"4\. smoke +pending +~5\.0s", out)  # from the last good run, median of earlier runs
    footer = line_with(out, "deploy ·")
    assert "2/4 steps" in footer and "30.0s elapsed" in footer and "~25.0s left" in footer  # 20 + 5
    assert "1 failed" in footer


def test_eta_from_the_median_of_earlier_runs_and_overrun() -> None:
    state = new_state()
    add(state, "compile", 0)
    hints = Hints(medians={"compile": 60.0})
    assert "~50.0s left" in line_with(frame(state, 10, hints=hints), "compile")
    assert "10.0s over estimate" in line_with(frame(state, 70, hints=hints), "compile")
    # no earlier run: no ETA, and the overall count does not pretend to know the total
    out = frame(state, 10)
    assert "left" not in line_with(out, "compile")
    assert "0 steps done" in line_with(out, "deploy ·")


def test_tail_shows_the_last_lines_that_fit_and_tells_stderr_apart() -> None:
    state = new_state()
    add(state, "build", 0)
    for i in range(150):
        state.tail.append((2 if i % 10 == 9 else 1, b"line %d" % i))
    out = frame(state, 1, height=12)
    assert len(out.splitlines()) <= 11  # fits the terminal, one line to spare
    assert "│ line 148" in out and "┃ line 149" in out  # stdout and stderr gutters
    assert "line 100" not in out


def test_warnings_and_store_problems_are_shown() -> None:
    state = new_state()
    add(state, "build", 0)
    state.warn("artifact out/report.html not copied: no such file")
    out = frame(state, 1, problems=["store /x/stepflow.db: database is locked by another process"])
    assert "warning: artifact out/report.html not copied: no such file" in out
    assert "warning: store /x/stepflow.db: database is locked" in out


def test_markup_and_control_characters_from_the_command_are_shown_literally() -> None:
    state = new_state("[bold]job[/bold]")
    add(state, "[red]step[/red] \x1b[2J\x1b]0;title\x07", 0)
    state.tail.append((1, b"[link=http://x]click[/link] \x07 \x1b[32mgreen\x1b[0m"))
    state.tail.append((1, b"progress 10%\rprogress 55%\r"))
    out = frame(state, 1)
    assert "\x1b" not in out and "\x07" not in out
    assert "[red]step[/red] \\x1b[2J\\x1b]0;title\\x07" in out
    assert "[bold]job[/bold] ·" in out
    assert "[link=http://x]click[/link] \\x07 green" in out  # colour codes dropped, the bell escaped
    assert "│ progress 55%" in out and "10%" not in out


def test_tail_text_keeps_what_a_terminal_would_show() -> None:
    assert tail_text(b"a\tb") == "a\tb"
    assert tail_text(b"\xff\x00x") == "\ufffd\\x00x"
    assert tail_text(b"\x1b[1;31mred\x1b[0m \x1b[Kcleared") == "red \\x1b[Kcleared"


def test_a_run_with_many_steps_is_folded_to_fit() -> None:
    state = new_state()
    for i in range(500):
        add(state, f"s{i}", i, end=i + 1, status="completed" if i % 100 else "failed")
    add(state, "last", 500)
    out = frame(state, 501, height=20)
    assert len(out.splitlines()) <= 19
    # 20 lines: the footer, one spare, one line for the folded steps, the 17 latest steps
    assert "484 earlier steps: 479 completed, 5 failed" in out
    assert "501. last" in out and "485. s484" in out and "484. s483" not in out
    state.tail.extend((1, b"out %d" % i) for i in range(50))
    out = frame(state, 501, height=20)
    assert len(out.splitlines()) <= 19 and "│ out 49" in out  # output keeps a share of the screen


def test_ascii_symbols_when_the_terminal_cannot_show_unicode() -> None:
    state = new_state()
    add(state, "a", 0, end=1, status="completed")
    state.tail.append((2, b"oops"))
    out = draw(render_run(state, now=T0 + 2, unicode=False))
    assert "+ 1. a" in out and "! oops" in out
    assert not re.search(r"[^\x00-\x7f]", out.replace("━", "").replace("╸", "").replace("╺", ""))


# -- the summary printed at the end ---------------------------------------------------------


def test_summary_table_and_where_logs_and_artifacts_are() -> None:
    state = new_state()
    add(state, "build", 0, end=61, status="completed")
    add(state, "test", 61, end=63, status="failed", error="3 tests failed")
    state.status, state.ended, state.exit_code = "failed", T0 + 63, 3
    state.errors.append("command exited with status 3")
    state.artifacts.append(ArtifactState("/w/report.html", None, 0, stored="/s/artifacts/1234abcd/x_report.html"))
    state.artifacts.append(ArtifactState("/w/missing.txt", None, 0))
    state.tail.append((1, b"FAILED test_x"))
    out = draw(render_summary(state, now=T0 + 64, artifacts_dir="/s/artifacts/1234abcd"))
    assert re.search(r"#\s+Step\s+Status\s+Duration\s+Exit", out)
    assert re.search(r"1\s+build\s+completed\s+1m01s\s*$", out, re.M)  # a step has no exit status
    assert re.search(r"2\s+test\s+failed\s+2\.0s\s+3 tests failed", out)
    assert re.search(r"run\s+failed\s+1m03s\s+3\s+command exited with status 3", out)
    assert "stepflow logs 1234abcd" in out
    assert "artifacts  1 file in /s/artifacts/1234abcd, 1 not copied" in out
    assert out.index("FAILED test_x") < out.index("Step")  # a failed run repeats its last lines first


# -- the view: model updates only on the reader's path ----------------------------------------


def test_view_keeps_only_the_last_lines_of_a_block_and_counts_steps() -> None:
    console = Console(file=io.StringIO(), width=80, height=25, color_system=None)
    view = LiveView(console=console, clock=lambda: T0 + 5, refresh_per_second=50)
    state = new_state()
    view.handle(RunStarted(state))
    assert view._ready.wait(10)
    view.lines(1, b"\n".join(b"l%d" % i for i in range(5000)), 5000)
    view.lines(2, b"err", 1)
    assert list(state.tail)[-2:] == [(1, b"l4999"), (2, b"err")]
    assert len(state.tail) <= 61  # about a screen was split out of the block, not 5000 lines
    step = add(state, "a", 0)
    view.handle(StepStarted(state, step))
    step.status, step.ended = "completed", T0 + 1
    view.handle(StepEnded(state, step, "completed"))
    assert view.counts["completed"] == 1 and view.counts["running"] == 0
    view.problem("store is read-only")
    state.status, state.ended, state.exit_code = "completed", T0 + 2, 0
    view.finish(state)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert re.search(r"1\s+a\s+completed", out)
    assert "warning: store is read-only" in out
    assert "stepflow logs 1234abcd" in out


def test_view_passes_stdout_through_when_it_is_not_a_terminal() -> None:
    r, w = os.pipe()
    try:
        view = LiveView(console=Console(file=io.StringIO()), out_fd=w)
        view.raw(1, b"data\n")
        view.raw(2, b"not this\n")
        os.close(w)
        assert os.read(r, 100) == b"data\n"
    finally:
        os.close(r)


# -- hints from earlier runs ----------------------------------------------------------------


def test_hints_from_rows_median_plan_and_expected_steps() -> None:
    rows = [
        StepDuration("new", 0, "build", "completed", 10.0), StepDuration("new", 1, "test", "failed", 1.0),
        StepDuration("old", 0, "build", "completed", 20.0), StepDuration("old", 1, "test", "completed", 30.0),
        StepDuration("older", 0, "build", "completed", 40.0),
    ]
    hints = hints_from_rows(rows)
    assert hints.medians == {"build": 20.0, "test": 30.0}
    assert hints.plan == (("build", 10.0), ("test", None))
    assert hints.expected_steps == 2
    assert hints.expected("test", 5.0) == 5.0 and hints.expected("test", None) == 30.0
    assert hints_from_rows([StepDuration("x", None, None, None, None)]).expected_steps == 0
    assert hints_from_rows([]) == NO_HINTS


def test_load_hints_reads_earlier_completed_runs_and_never_fails(storage: Path) -> None:
    settings = load_settings()
    assert load_hints(settings, "nightly") == NO_HINTS  # no store yet
    store = open_store(settings)
    writes = []
    for n, (status, build) in enumerate([("completed", 10), ("completed", 30), ("failed", 1), ("completed", 20)]):
        run_id = f"run-{n}"
        writes.append(NewRun.of({"id": run_id, "name": "nightly", "command": "x", "status": status,
                                            "created_at": "2026-01-01T00:00:00+00:00", "created_ts": T0 + n}))
        for i, (name, seconds) in enumerate([("build", build), ("upload", 2)][: 1 + (n != 3)]):
            writes.append(NewStep.of({
                "id": f"{run_id}-{i}", "execution_id": run_id, "name": name, "step_index": i, "status": "completed",
                "created_at": "x", "started_at": "2026-01-01T00:00:00+00:00",
                "completed_at": f"2026-01-01T00:00:{seconds:02d}+00:00"}))
    store.write(writes)
    store.close()
    hints = load_hints(settings, "nightly")
    assert hints.medians["build"] == pytest.approx(20.0, abs=0.01)  # the failed run is not counted
    assert hints.medians["upload"] == pytest.approx(2.0, abs=0.01)
    assert hints.expected_steps == 1  # the last successful run had one step
    settings.database.write_bytes(b"not a database at all" * 100)
    assert load_hints(settings, "nightly") == NO_HINTS


# -- a real terminal ------------------------------------------------------------------------

SCRIPT = """
import sys, time
print("STEP_START:first[duration=2]", flush=True)
time.sleep(0.8)
print("working on it", flush=True)
print("STEP_COMPLETE:first", flush=True)
print("STEP_START:second", flush=True)
print("careful now", file=sys.stderr, flush=True)
time.sleep(0.8)
print("STEP_COMPLETE:second", flush=True)
"""


def run_in_terminal(args: list[str], *, env: dict[str, str] | None = None, rows: int = 30, cols: int = 100,
                    timeout: float = 30, resize: tuple[float, int, int] | None = None) -> tuple[int, bytes]:
    """Run `python -m stepflow ARGS` with a pseudo-terminal as its controlling terminal.

    `resize` = (after seconds, rows, cols): the window changes size while it runs.
    """
    import fcntl
    import pty
    import struct
    import termios

    full_env = {**os.environ, "TERM": "xterm-256color", **(env or {})}
    for name in ("COLUMNS", "LINES", "NO_COLOR"):  # the terminal's own size, and colours, unless asked
        if name not in (env or {}):
            full_env.pop(name, None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin, stdout and stderr are the terminal
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execvpe(sys.executable, [sys.executable, "-m", "stepflow", *args], full_env)
        finally:
            os._exit(127)
    out = bytearray()
    started = time.monotonic()
    deadline = started + timeout
    try:
        while time.monotonic() < deadline:
            if resize is not None and time.monotonic() - started >= resize[0]:
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", resize[1], resize[2], 0, 0))
                resize = None
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not data:
                break
            out += data
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), bytes(out)


def test_live_view_in_a_real_terminal(storage: Path) -> None:
    code, out = run_in_terminal(["run", "--", *py(SCRIPT)], resize=(1.2, 20, 60))  # narrower while it runs
    assert code == 0, out[-2000:]
    text = ANSI.sub("", out.decode("utf-8", "replace"))
    running_first = text.find("1. first")
    assert re.search(r"1\. first +running", text), text[-3000:]
    first_passed = re.search(r"1\. first +completed", text)
    second_running = re.search(r"2\. second +running", text)
    assert first_passed and second_running and running_first < first_passed.start()
    assert "~" in text[running_first:first_passed.start()] and "left" in text  # the ETA from [duration=2]
    assert "┃ careful now" in text and "│ working on it" in text  # output tail, stderr told apart
    assert text.count("Duration") == 1  # the summary table, printed once at the end
    summary = text[text.index("Duration"):]
    assert re.search(r"1\s+first\s+completed", summary) and re.search(r"2\s+second\s+completed", summary)
    assert re.search(r"run\s+completed", summary) and "stepflow logs " in summary
    assert max(len(line) for line in summary.splitlines()) <= 60  # drawn for the new size
    assert re.search(rb"\x1b\[[0-9;]*3[0-9]m", out)  # colours, on a terminal
    assert b"\x1b[?25l" in out and b"\x1b[?25h" in out  # cursor hidden while drawing, and given back


def test_no_color_flag_in_a_real_terminal(storage: Path) -> None:
    code, out = run_in_terminal(["run", "--no-color", "--", *py("print('STEP_START:x\\nhi')")])
    assert code == 0
    assert not re.search(rb"\x1b\[[0-9;]*(3[0-9]|9[0-7])m", out)
    assert re.search(r"1\s+x\s+completed", ANSI.sub("", out.decode()))

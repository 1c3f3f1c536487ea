"""Rich renderables of a run: the live frame and the closing summary. Pure: no clock, no I/O.

Everything that comes from the command (step names, errors, output lines, metadata, paths)
goes into `rich.text.Text` after `fmt.safe_text`, never through markup, so `[bold]` stays
literal and no control character reaches the terminal. Imported only by the live view and
tests: Rich costs tens of milliseconds to import.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from stepflow import fmt
from stepflow.hints import NO_HINTS, Hints
from stepflow.record import record
from stepflow.state import RunState, StepState

STDERR = 2
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_SPINNER = "|/-\\"
# One vocabulary: the step and run statuses as stored and as `show` prints them.
STYLES = {"completed": "green", "failed": "bold red", "running": "cyan", "pending": "dim", "skipped": "dim",
          "cancelled": "yellow", "timed_out": "red", "abandoned": "yellow"}
ICONS = {"completed": "✓", "failed": "✗", "pending": "·", "skipped": "-"}
ASCII_ICONS = {"completed": "+", "failed": "x", "pending": ".", "skipped": "-"}
MAX_WARNINGS_SHOWN = 3
FAILED_TAIL = 10  # lines of output repeated under the summary when a run fails
SUMMARY_ROWS = 40  # steps listed in the closing table, at most
_SGR = re.compile(rb"\x1b\[[0-9;:]*m")


@record(frozen=True)
class Symbols:
    spinner: str
    icons: dict[str, str]
    gutter_out: str
    gutter_err: str
    more: str
    dot: str


UNICODE = Symbols(SPINNER, ICONS, "│ ", "┃ ", "…", " · ")
ASCII = Symbols(ASCII_SPINNER, ASCII_ICONS, "| ", "! ", "...", " - ")


def tail_text(data: bytes) -> str:
    """One output line as the tail shows it: what a terminal would leave visible, made safe.

    A `\\r` progress bar shows its last state, colour codes are dropped, and every other
    control character is escaped by fmt.safe_text.
    """
    if b"\r" in data:
        data = data.rstrip(b"\r").rsplit(b"\r", 1)[-1]
    if b"\x1b" in data:
        data = _SGR.sub(b"", data)
    return fmt.safe_text(data)


def tally(steps: Sequence[StepState]) -> Counter[str]:
    """How many steps are in each status."""
    return Counter(s.status for s in steps)


def step_eta(step: StepState, hints: Hints, now: float) -> float | None:
    """Seconds left for a running step (negative: over its estimate); None without an estimate."""
    expected = hints.expected(step.name, step.expected)
    return None if expected is None else expected - (now - step.started)


def run_eta(state: RunState, hints: Hints, now: float) -> float | None:
    """Seconds left for the whole run: the running step plus the steps the last good run had after it.

    None when any part is unknown, or when no successful run says how many steps to expect.
    """
    if hints.expected_steps is None:
        return None
    left = 0.0
    current = state.current
    if current is not None:
        eta = step_eta(current, hints, now)
        if eta is None:
            return None
        left += max(eta, 0.0)
    for name, seconds in hints.plan[state.step_count:]:
        expected = hints.medians.get(name, seconds)
        if expected is None:
            return None
        left += expected
    return left


def _snapshot_tail(state: RunState, count: int) -> list[tuple[int, bytes]]:
    """The last `count` lines; the reader thread appends meanwhile, so copy first (retry if moved)."""
    if count <= 0:
        return []
    for _ in range(5):
        try:
            lines = list(state.tail)
        except RuntimeError:  # deque mutated during iteration
            continue
        return lines[-count:]
    return []


def _step_row(step: StepState, hints: Hints, now: float, sym: Symbols) -> tuple[Text, ...]:
    word = step.status
    style = STYLES.get(word, "")
    if step.status == "running":
        icon = sym.spinner[int(now * 10) % len(sym.spinner)]
        elapsed = now - step.started
    else:
        icon = sym.icons.get(word, "?")
        elapsed = step.duration if step.duration is not None else 0.0
    note = Text()
    if step.status == "running":
        eta = step_eta(step, hints, now)
        if eta is not None and eta >= 0:
            note.append(f"~{fmt.duration(eta)} left", style="cyan")
        elif eta is not None:
            note.append(f"{fmt.duration(-eta)} over estimate", style="yellow")
    elif step.status == "failed" and step.error:
        note.append(fmt.safe_text(step.error), style="red")
    name = Text(f"{step.index + 1}. ", style="dim")
    name.append(fmt.safe_text(step.name))
    return (Text(icon, style=style), name, Text(word, style=style), Text(fmt.duration(elapsed)), note)


def _pending_row(index: int, name: str, expected: float | None, sym: Symbols, word: str) -> tuple[Text, ...]:
    text = Text(f"{index + 1}. ", style="dim")
    text.append(fmt.safe_text(name), style="dim")
    note = Text(f"~{fmt.duration(expected)}" if expected is not None else "", style="dim")
    return (Text(sym.icons[word], style="dim"), text, Text(word, style="dim"), Text(""), note)


def _steps_lines(
    state: RunState, hints: Hints, now: float, rows: int, counts: Counter[str], sym: Symbols, width: int,
) -> list[Text]:
    """At most `rows` lines: the latest steps, the running one, and what the last good run had next."""
    steps = state.steps  # the most recent ones; step_count says how many there were
    started = state.step_count
    pending = hints.plan[started:] if state.status == "running" else ()
    pending_rows = min(len(pending), max(1, rows // 4)) if pending else 0
    more_pending = len(pending) - pending_rows
    if more_pending > 0:
        pending_rows = max(pending_rows - 1, 0)
        more_pending = len(pending) - pending_rows
    step_rows = max(rows - pending_rows - (1 if more_pending > 0 else 0), 1)
    cells: list[tuple[Text, ...]] = []
    if started > step_rows:
        shown = list(steps[len(steps) - (step_rows - 1):]) if step_rows > 1 else []
        hidden = counts.copy()
        hidden.subtract(tally(shown))
        parts = [f"{n} {s}" for s, n in sorted(hidden.items()) if n > 0]
        cells.append((Text(sym.more, style="dim"),
                      Text(f"{started - len(shown)} earlier steps: " + ", ".join(parts), style="dim")))
    else:
        shown = list(steps)
    cells.extend(_step_row(step, hints, now, sym) for step in shown)
    for offset, (name, seconds) in enumerate(pending[:pending_rows]):
        cells.append(_pending_row(started + offset, name, hints.medians.get(name, seconds), sym, "pending"))
    if more_pending > 0:
        cells.append((Text(sym.more, style="dim"), Text(f"{more_pending} more steps expected", style="dim")))
    return _columns(cells, width)


def _columns(rows: list[tuple[Text, ...]], width: int) -> list[Text]:
    """Rows of cells as aligned single lines (a Rich Table costs ~10x more per frame)."""
    longest = max((r[1].cell_len for r in rows if len(r) == 5), default=0)
    notes = max((r[4].cell_len for r in rows if len(r) == 5), default=0)
    # Names get what the notes leave, and at least two thirds of the free width.
    name_width = max(12, min(longest, max((width - 21) * 2 // 3, width - 21 - notes)))
    lines = []
    for row in rows:
        if len(row) == 5:
            icon, name, word, elapsed, note = row
            name.truncate(name_width, overflow="ellipsis", pad=True)
            word.truncate(9, pad=True)  # "completed", the longest status word
            elapsed.align("right", 7)
            line = Text.assemble(icon, " ", name, " ", word, " ", elapsed, " ", note)
        else:
            line = Text.assemble(*row[:1], " ", *row[1:])
        line.no_wrap, line.overflow = True, "ellipsis"
        lines.append(line)
    return lines


def _footer(state: RunState, hints: Hints, now: float, counts: Counter[str], sym: Symbols) -> Table:
    done = sum(n for s, n in counts.items() if s not in ("running", "pending"))
    expected = None if hints.expected_steps is None else max(hints.expected_steps, state.step_count)
    parts = [f"{done}/{expected} steps" if expected else f"{done} step{'' if done == 1 else 's'} done"]
    if counts.get("failed"):
        parts.append(f"{counts['failed']} failed")
    parts.append(f"{fmt.duration(now - state.started)} elapsed")
    eta = run_eta(state, hints, now)
    if eta is not None:
        parts.append(f"~{fmt.duration(eta)} left")
    parts.append(f"{state.lines:,} lines")
    if state.cpu_seconds is not None:
        parts.append(f"cpu {fmt.duration(state.cpu_seconds)}")
    if state.peak_rss:
        parts.append(fmt.size(state.peak_rss))
    if state.max_processes and state.max_processes > 1:
        parts.append(f"{state.max_processes} procs")
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=20, no_wrap=True)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    if expected:
        bar = ProgressBar(total=expected, completed=min(done, expected), width=20, animation_time=now)
    else:
        bar = ProgressBar(total=None, width=20, pulse=True, animation_time=now)
    title = Text(fmt.safe_text(state.name), style="bold")
    title.append(sym.dot + sym.dot.join(parts), style="")
    grid.add_row(bar, title)
    return grid


def _warning_lines(state: RunState, problems: Sequence[str], limit: int) -> list[Text]:
    messages = [*state.warnings, *problems]
    dropped = state.warnings_dropped
    if not messages or limit <= 0:
        return []
    shown = messages[-limit:]
    more = len(messages) - len(shown) + dropped
    lines = [Text("warning: " + fmt.safe_text(m), style="yellow", no_wrap=True, overflow="ellipsis")
             for m in shown]
    if more:
        lines.append(Text(f"(+{more} more warnings; see \"stepflow show {state.id[:8]}\")", style="yellow"))
    return lines


def _tail_lines(lines: list[tuple[int, bytes]], sym: Symbols) -> list[Text]:
    out = []
    for stream, data in lines:
        err = stream == STDERR
        text = Text(sym.gutter_err if err else sym.gutter_out, style="red" if err else "dim",
                    no_wrap=True, overflow="ellipsis")
        text.append(tail_text(data), style="red dim" if err else "")
        out.append(text)
    return out


def render_run(
    state: RunState,
    *,
    now: float,
    hints: Hints = NO_HINTS,
    problems: Sequence[str] = (),
    height: int = 24,
    width: int = 80,
    counts: Counter[str] | None = None,
    unicode: bool = True,
    partial: tuple[int, bytes] | None = None,
) -> RenderableType:
    """The live frame: steps (state, elapsed, ETA), the last output lines, warnings, progress.

    Fits in a terminal of `height` lines and `width` columns: long step lists are folded into one line, and the output
    tail gets the lines left over. `counts` (steps per status) may be kept by the caller so a
    run with a million steps is not counted again on every frame. `partial` is the line the
    command is writing (no newline yet: a prompt, a `\r` progress bar), shown as the tail's last.
    """
    sym = UNICODE if unicode else ASCII
    counts = tally(state.steps) if counts is None else counts
    avail = max(height - 2, 3)  # the footer, and one spare line so the terminal never scrolls
    warnings = _warning_lines(state, problems, min(MAX_WARNINGS_SHOWN, avail // 4))
    avail -= len(warnings)
    pending = len(hints.plan) - state.step_count if state.status == "running" else 0
    step_rows_wanted = state.step_count + max(pending, 0)
    tail_len = len(state.tail) + (partial is not None)
    tail_share = min(tail_len, avail // 3)
    step_rows = max(min(step_rows_wanted, avail - tail_share), 1)
    room = avail - min(step_rows, step_rows_wanted)
    if partial is not None and room > 0:
        tail = [*_snapshot_tail(state, room - 1), partial]
    else:
        tail = _snapshot_tail(state, room)
    parts: list[RenderableType] = []
    if step_rows_wanted:
        parts.extend(_steps_lines(state, hints, now, step_rows, counts, sym, width))
    parts.extend(_tail_lines(tail, sym))
    parts.extend(warnings)
    parts.append(_footer(state, hints, now, counts, sym))
    return Group(*parts)


def _run_duration(state: RunState, now: float) -> float:
    return (state.ended if state.ended is not None else now) - state.started


def render_summary(
    state: RunState, *, now: float, problems: Sequence[str] = (), artifacts_dir: str | None = None,
    unicode: bool = True, width: int = 100,
) -> RenderableType:
    """Printed once when the run ends: a table of the steps, then where its logs and artifacts are."""
    sym = UNICODE if unicode else ASCII
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", expand=False)
    table.add_column("#", justify="right", style="dim")
    # Names and notes are cut to what the fixed columns leave, never folded: at 40 columns a
    # folded name ran one letter a line, and Rich squeezing them dropped Status and Exit.
    fixed = 4 + 10 + 9 + 5 + 2  # "#", Status, Duration, Exit with their padding, and a spare
    longest = max((len(s.name) for s in state.steps), default=3)
    step_width = max(6, min(48, longest, (width - fixed) * 2 // 3))
    note_width = max(4, min(40, width - fixed - step_width - 1))
    table.add_column("Step", overflow="ellipsis", no_wrap=True, max_width=step_width)
    table.add_column("Status", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    table.add_column("Exit", justify="right", no_wrap=True)
    table.add_column("Note", overflow="ellipsis", no_wrap=True, max_width=note_width)
    steps = state.steps
    if state.step_count > SUMMARY_ROWS:
        # A run with many steps: its failures (a few) and its last steps; `show` has them all.
        last = steps[-SUMMARY_ROWS // 2:]
        failed = [s for s in steps[:-len(last)] if s.status == "failed"][-SUMMARY_ROWS // 2:]
        hidden = state.step_count - len(last) - len(failed)
        table.add_row("", Text(f"{sym.more} {hidden} more steps (stepflow show {state.id[:8]})", style="dim"))
        steps = [*failed, *last]
    for step in steps:
        word = step.status
        # A step has no exit status of its own (the command has one, on the run's row): a
        # made-up 0 or 1 beside "command exited with status 4" would mislead.
        exit_code = ""
        table.add_row(
            str(step.index + 1), Text(fmt.safe_text(step.name)), Text(word, style=STYLES.get(word, "")),
            fmt.duration(step.duration), exit_code,
            Text(fmt.safe_text(step.error or ""), style="red"),
        )
    status_style = STYLES.get(state.status, "")
    table.add_row(
        "", Text("run", style="bold"), Text(state.status, style="bold " + status_style),
        fmt.duration(_run_duration(state, now)), "-" if state.exit_code is None else str(state.exit_code),
        Text(fmt.safe_text(state.errors[0]) if state.errors else "", style="red"),
        end_section=False,
    )
    parts: list[RenderableType] = []
    if state.status != "completed" and state.tail:
        parts.append(Text(f"last lines of output ({sym.gutter_err.strip()} = stderr):", style="dim"))
        parts.extend(_tail_lines(_snapshot_tail(state, FAILED_TAIL), sym))
        parts.append(Text(""))
    parts.append(table)
    for line in _warning_lines(state, problems, 10):
        parts.append(line)
    where = Text("logs       ", style="dim")
    where.append(f"stepflow logs {state.id[:8]}")
    where.append(f"   (stepflow show {state.id[:8]} for details)", style="dim")
    parts.append(where)
    if state.artifacts:
        # Copies happen on the writer's thread as the markers arrive; a failed one left a warning.
        copied = sum(1 for a in state.artifacts if a.stored)
        folder = artifacts_dir or next((a.stored.rsplit("/", 1)[0] for a in state.artifacts if a.stored), None)
        text = Text("artifacts  ", style="dim")
        text.append(f"{copied} file{'s' if copied != 1 else ''}")
        if folder and copied:
            text.append(" in " + fmt.safe_text(folder))
        if copied < len(state.artifacts):
            text.append(f", {len(state.artifacts) - copied} not copied", style="yellow")
        parts.append(text)
    return Group(*parts)

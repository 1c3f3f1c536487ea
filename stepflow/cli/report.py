"""How the history commands print: run tables, run reports, log lines, JSON. Writes to stdout.

Formatting only: what to print comes from stepflow.history (the read library `stepflow serve`
shares); this module turns its values into text.

On a terminal, tables and reports are drawn with Rich (statuses in colour unless NO_COLOR or
--no-color); elsewhere they are plain aligned text and Rich is not imported at all (it costs
tens of milliseconds). Everything that came from a command goes through fmt.safe_text, so
stored bytes cannot move the cursor, retitle the window or ring the bell.
"""

from __future__ import annotations

import contextlib
import sys
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime

from stepflow import fmt
from stepflow.config import Settings, color_wanted
from stepflow.errors import StoreError
from stepflow.history import detail as history
from stepflow.store import Store, exists, open_store
from stepflow.store.base import STDERR, LogLine, Run
from stepflow.store.connection import intent_path, missing_store_error

STATUS_STYLES = {
    "completed": "green", "failed": "bold red", "running": "cyan", "pending": "dim", "skipped": "dim",
    "cancelled": "yellow", "timed_out": "red", "abandoned": "yellow",
}
STDERR_ON = b"\x1b[2;31m"  # dim red: stderr lines told apart on a terminal, their text unchanged
STYLE_OFF = b"\x1b[0m"

Cell = str | tuple[str, str]  # text, or (text, Rich style)

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import IO, Any


def store_exists(settings: Settings) -> bool:
    """Whether the store has been created (a first `stepflow run` creates it).

    Raises:
        StoreError: no database because a `rollback --backup` was interrupted (not a new store).
    """
    if exists(settings):
        return True
    if intent_path(settings.database).exists():
        raise missing_store_error(settings.database)
    return False


@contextlib.contextmanager
def reading(settings: Settings) -> Iterator[Store]:
    """Open the store for the history commands (spooled runs replayed first, quickly); a
    missing store is an error, not a new file."""
    with reading_raw(settings) as store:
        _replay_spool(settings, store)
        yield store


@contextlib.contextmanager
def reading_raw(settings: Settings) -> Iterator[Store]:
    """Open the store as it is; a missing store is an error, not a new file."""
    if not exists(settings):  # only a file can be missing: a server-backed store is taken to exist
        raise missing_store_error(settings.database)
    try:
        store = open_store(settings)
    except StoreError:
        # Not writable (a read-only file or mount, a full disk): reading needs no write access.
        store = open_store(settings, readonly=True)
    try:
        yield store
    finally:
        store.close()


def _replay_spool(settings: Settings, store: Store) -> None:
    """What runs spooled while the store was busy or full goes in now, if it can (quick)."""
    from stepflow.history import abandoned
    from stepflow.store.spool import replay_waiting

    done = replay_waiting(store, settings.spool_dirs)
    if done is not None and done.waiting:
        abandoned.hold(done.waiting)


def print_json(value: Any) -> None:
    import json

    print(json.dumps(value, ensure_ascii=False, indent=2))


def wants_color(no_color: bool = False) -> bool:
    return color_wanted(no_color)


# -- small formatters ----------------------------------------------------------------------


def ago(ts: float | None, now: float) -> str:
    """'12s ago', '3m ago', '5h ago', '3d ago'; a date past a week."""
    if ts is None:
        return "-"
    delta = now - ts
    if delta < 1:
        return "just now"
    for limit, unit, size in ((60, "s", 1), (3600, "m", 60), (86400, "h", 3600), (7 * 86400, "d", 86400)):
        if delta < limit:
            return f"{int(delta // size)}{unit} ago"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d")


def local_time(text: str | None) -> str:
    """A stored time as local wall-clock time, to the second."""
    value = history.parse_time(text)
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def size(n: int | None) -> str:
    return "-" if n is None else fmt.size(n)


def _started_ts(run: Run) -> float | None:
    if run.created_ts is not None:
        return run.created_ts
    value = history.parse_time(run.started_at or run.created_at)
    return None if value is None else value.timestamp()


def _safe_cell(cell: Cell) -> Cell:
    """Every text bound for the terminal, escaped here at the one door out (ids and statuses of
    a damaged or hostile store included), so no caller can forget."""
    if isinstance(cell, str):
        return fmt.safe_text(cell)
    return (fmt.safe_text(cell[0]), cell[1])


def _status(status: str) -> tuple[str, str]:
    return (status, STATUS_STYLES.get(status, ""))


# -- output: Rich on a terminal, plain text elsewhere ---------------------------------------


class Printer:
    """Lines and tables of styled text: Rich on a terminal, aligned plain text otherwise."""

    def __init__(self, *, rich: bool, color: bool = True, file: IO[str] | None = None) -> None:
        self.file = file or sys.stdout
        self.rich = rich  # on a terminal: styled, fitted to its width (Rich, or SGR codes for plain tables)
        self.color = color
        self._rich_console: Any = None

    @property
    def _console(self) -> Any:
        """Rich's console, made on first use: `ls` on a terminal draws its table without Rich
        (importing it costs ~100 ms, more than the rest of `ls`)."""
        if self._rich_console is None and self.rich:
            from rich.console import Console

            self._rich_console = Console(file=self.file, no_color=not self.color, highlight=False, markup=False,
                                         emoji=False)
        return self._rich_console

    @classmethod
    def for_stdout(cls, *, no_color: bool = False) -> Printer:
        return cls(rich=sys.stdout.isatty(), color=wants_color(no_color))

    def line(self, *cells: Cell) -> None:
        cells = tuple(_safe_cell(c) for c in cells)
        if self._console is None:
            print("".join(c if isinstance(c, str) else c[0] for c in cells), file=self.file)
            return
        from rich.text import Text

        self._console.print(Text.assemble(*cells))

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, right: Collection[int] = (),
        wrap: Collection[int] = (), indent: int = 0, shrink: int | None = None,
    ) -> None:
        """`shrink`: the column that gives way (cut with an ellipsis) when the terminal is too
        narrow; the others keep their full width."""
        rows = [[_safe_cell(c) for c in row] for row in rows]
        if not self.rich:
            self._plain_table(headers, rows, right=right, indent=indent)
            return
        if not wrap:
            self._terminal_table(headers, rows, right=right, indent=indent, shrink=shrink)
            return
        from rich.padding import Padding
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, header_style="bold", pad_edge=False, show_edge=False, padding=(0, 2, 0, 0))
        if shrink is not None:
            rows = _fit(headers, [list(r) for r in rows], shrink, self._console.width - indent)
        for i, header in enumerate(headers):
            table.add_column(header, justify="right" if i in right else "left",
                             no_wrap=i not in wrap, overflow="fold" if i in wrap else "ellipsis")
        for row in rows:
            table.add_row(*(Text(c) if isinstance(c, str) else Text(c[0], style=c[1]) for c in row))
        self._console.print(Padding(table, (0, 0, 0, indent)) if indent else table)

    def _plain_table(
        self, headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, right: Collection[int], indent: int,
    ) -> None:
        texts = [list(headers), *([c if isinstance(c, str) else c[0] for c in row] for row in rows)]
        widths = [max(_width(r[i]) for r in texts) for i in range(len(headers))]
        pad = " " * indent
        for r in texts:
            cells = [_pad(c, w, right=i in right) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
            print(pad + "  ".join(cells).rstrip(), file=self.file)


    def _terminal_table(
        self, headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, right: Collection[int], indent: int,
        shrink: int | None,
    ) -> None:
        """The table as Rich draws it (bold headers, styled cells, two spaces between columns),
        with SGR codes of its own: cut to the terminal's width, column `shrink` first."""
        import os

        width = terminal_width(self.file) - indent
        color = self.color and os.environ.get("TERM", "").lower() not in ("dumb", "unknown")  # as Rich decides
        if shrink is not None:
            rows = _fit(headers, [list(r) for r in rows], shrink, width)
        table: list[list[Cell]] = [[(h, "bold") for h in headers], *(list(r) for r in rows)]
        widths = [max(_width(_text(r[i])) for r in table) for i in range(len(headers))]
        for row in table:
            room, out = width, []
            for i, (cell, w) in enumerate(zip(row, widths, strict=True)):
                gap = 2 if i < len(row) - 1 else 0
                text = _pad(_text(cell), w, right=i in right)
                if _width(text) + gap > room:  # what still does not fit is cut, as Rich crops
                    text = _cut(text, room - 1) + "…" if room > 0 else ""
                    gap = 0
                style = cell[1] if isinstance(cell, tuple) and color else ""
                out.append(_sgr(style, text.rstrip() if i == len(row) - 1 else text) + " " * gap)
                room -= _width(text) + gap
                if room <= 0:
                    break
            print(" " * indent + "".join(out).rstrip(" "), file=self.file)


SGR = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35",
       "cyan": "36"}


def _sgr(style: str, text: str) -> str:
    codes = ";".join(SGR[word] for word in style.split() if word in SGR)
    return f"\x1b[{codes}m{text}\x1b[0m" if codes and text else text


def _text(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def _cut(text: str, room: int) -> str:
    while text and _width(text) > room:
        text = text[:-1]
    return text


def terminal_width(file: IO[str]) -> int:
    """COLUMNS when set (as Rich reads it), else the terminal's width, else 80."""
    import os

    try:
        return max(int(os.environ["COLUMNS"]), 1)
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(file.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return 80


def _fit(headers: Sequence[str], rows: list[list[Cell]], shrink: int, width: int) -> list[list[Cell]]:
    """Cut column `shrink` (with an ellipsis) so the table fits in `width` columns."""
    def text(c: Cell) -> str:
        return c if isinstance(c, str) else c[0]

    widths = [max([_width(h), *(_width(text(r[i])) for r in rows)]) for i, h in enumerate(headers)]
    room = width - (sum(widths) - widths[shrink]) - 2 * (len(headers) - 1)
    room = max(room, min(widths[shrink], 8))
    if widths[shrink] <= room:
        return rows
    out = []
    for row in rows:
        cell = row[shrink]
        value = text(cell)
        if _width(value) > room:
            while value and _width(value) > room - 1:
                value = value[:-1]
            value += "…"
        out.append([*row[:shrink], value if isinstance(cell, str) else (value, cell[1]), *row[shrink + 1:]])
    return out


def _width(text: str) -> int:
    """Columns `text` takes in a terminal: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, *, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


# -- ls ------------------------------------------------------------------------------------


def print_run_table(runs: list[Run], *, printer: Printer, now: float) -> None:
    """One run a line: id, name, status, steps done/total, duration, start (relative on a terminal)."""
    if not runs:
        return  # nothing to list: nothing printed (as `git log` in a fresh repository)
    with_tags = any(isinstance(r.tags, list) and r.tags for r in runs)
    with_host = len({r.host for r in runs if r.host}) > 1  # a fleet's history: say where each ran
    headers = (["ID", "NAME", "STATUS", "STEPS", "DURATION", "STARTED"] + (["HOST"] if with_host else [])
               + (["TAGS"] if with_tags else []))
    rows: list[list[Cell]] = []
    for run in runs:
        started = _started_ts(run)
        took = history.seconds_between(run.started_at, run.completed_at)
        if took is None and run.status == "running" and started is not None:
            took = now - started
        row: list[Cell] = [
            run.id[:8], fmt.safe_text(run.name), _status(run.status),
            f"{run.completed_steps}/{run.total_steps}", fmt.duration(took),
            ago(started, now) if printer.rich else local_time(run.started_at or run.created_at),
        ]
        if with_host:
            row.append(fmt.safe_text(run.host or "-"))
        if with_tags:
            tags = run.tags if isinstance(run.tags, list) else []
            row.append((fmt.safe_text(", ".join(map(str, tags))), "dim"))
        rows.append(row)
    printer.table(headers, rows, right={3, 4}, shrink=1)  # a long name never pushes ID or STATUS off


# -- show ----------------------------------------------------------------------------------


def print_run_report(d: dict[str, Any], *, printer: Printer, now: float) -> None:
    """`show`: the run, its steps with durations, resources and errors, its artifacts and warnings."""
    safe = fmt.safe_text
    p = printer
    p.line(("run ", "bold"), (d["id"], "bold"), "  ", safe(d["name"]))
    status: list[Cell] = [_status(d["status"])]
    if d["exit_code"] is not None:
        status.append(f"  exit {d['exit_code']}")
    p.line("  status     ", *status)
    p.line("  command    ", safe(d["command"]))
    start_text = d["started_at"] or d["created_at"]
    started = history.parse_time(start_text)
    when = "-" if started is None else f"{local_time(start_text)} ({ago(started.timestamp(), now)})"
    if d["duration_s"] is None and d["status"] == "running" and started is not None:
        p.line("  started    ", when, "   running for ", fmt.duration(now - started.timestamp()))
    else:
        p.line("  started    ", when, "   took ", fmt.duration(d["duration_s"]))
    where = "@".join(safe(str(x)) for x in (d.get("user"), d.get("host")) if x)
    if d.get("working_directory"):
        where += ("  in " if where else "") + safe(d["working_directory"])
    if where:
        p.line("  ran by     ", where)
    if d["tags"] or d.get("tags_raw"):
        p.line("  tags       ", safe(", ".join(map(str, d["tags"])) or d["tags_raw"]))
    if d.get("error_message"):
        p.line("  error      ", (safe(d["error_message"]), "red"))
    resources = _resources(d)
    if resources:
        p.line("  resources  ", resources)
    for key, value in _items(d["metadata"]):
        if key == "attempts" and isinstance(value, list):  # --retry (stepflow.run.attempts)
            p.line("  attempts   ", _attempts(value))
            continue
        p.line("  meta       ", safe(str(key)), "=", safe(str(value)))
    if d.get("metadata_raw"):
        p.line("  meta       ", safe(d["metadata_raw"]), ("  (not JSON, kept as it was)", "dim"))
    p.line("  output     ", f"{d['line_count']:,} lines", (f"   stepflow logs {d['id'][:8]}", "dim"))
    if d.get("lost_lines"):
        p.line("  lost       ", (f"{d['lost_lines']:,} lines could not be recorded", "yellow"))
    p.line()
    p.line(("steps", "bold"), f"  {d['completed_steps']}/{d['total_steps']} completed")
    if d["steps"]:
        rows: list[list[Cell]] = []
        for step in d["steps"]:
            notes = []
            if step["error_message"]:
                notes.append(safe(step["error_message"]))
            if step["stop_on_error"]:
                notes.append("stop_on_error")
            if step.get("description"):
                notes.append(safe(step["description"]))
            notes += [f"{safe(str(k))}={safe(str(v))}" for k, v in _items(step["metadata"])]
            rows.append([
                str(step["index"] + 1), safe(step["name"]), _status(step["status"]),
                fmt.duration(step["duration_s"]), _cpu(step["cpu_seconds"]), size(step["peak_rss"]),
                (" · ".join(notes), "red" if step["error_message"] else ""),
            ])
        p.table(["#", "STEP", "STATUS", "DURATION", "CPU", "PEAK RSS", "NOTE"], rows,
                right={0, 3, 4, 5}, wrap={6}, indent=2)
    for index, tail in sorted((d.get("failed_tails") or {}).items()):
        p.line()
        name = next((s["name"] for s in d["steps"] if s["index"] == index), "?")
        p.line((f"last lines of step {index + 1} ({safe(name)}, failed)", "bold"),
               (f"   stepflow logs {d['id'][:8]} --step {index + 1}", "dim"))
        for stream, text in tail:
            p.line("  ", ("┃ " if stream == STDERR else "│ ", "red" if stream == STDERR else "dim"),
                   (safe(text), "red" if stream == STDERR else ""))
    if d["artifacts"]:
        p.line()
        p.line(("artifacts", "bold"))
        rows = [[
            safe(a["name"]), size(a["size"]), safe(a["step"] or "-"), (a["sha256"] or "-")[:12], safe(a["path"]),
        ] for a in d["artifacts"]]
        p.table(["NAME", "SIZE", "STEP", "SHA256", "PATH"], rows, right={1}, wrap={4}, indent=2)
    warnings = d["warnings"] if isinstance(d["warnings"], list) else []
    if warnings:
        p.line()
        p.line(("warnings", "bold yellow"))
        for warning in warnings:
            p.line("  ", (safe(str(warning)), "yellow"))


def _attempts(attempts: list[Any]) -> str:
    """`3: exit 1 (2.0s), exit 1 (2.1s), exit 0 (1.9s)`: each attempt of a --retry run."""
    told = [f"exit {a.get('exit_code')} ({fmt.duration(a.get('duration_s'))})" + (" interrupted" if a.get("interrupted") else "")
            if isinstance(a, dict) else fmt.safe_text(str(a)) for a in attempts]
    return f"{len(attempts)}: " + ", ".join(told)


def _items(value: Any) -> list[tuple[Any, Any]]:
    return list(value.items()) if isinstance(value, dict) else []


def _cpu(seconds: float | None) -> str:
    return "-" if seconds is None else fmt.duration(seconds)


def _resources(d: dict[str, Any]) -> str:
    parts = []
    if d.get("cpu_seconds") is not None:
        parts.append(f"cpu {fmt.duration(d['cpu_seconds'])}")
    if d.get("peak_rss") is not None:
        parts.append(f"peak RSS {size(d['peak_rss'])}")
    if d.get("max_processes"):
        parts.append(f"{d['max_processes']} process{'es' if d['max_processes'] != 1 else ''} at most")
    return " · ".join(parts)


# -- logs ----------------------------------------------------------------------------------


HEADER_ON = b"\x1b[1;36m"


def print_logs(
    lines: Iterable[object], *, timestamps: bool = False, raw: bool = False, color: bool = False,
    out: IO[bytes] | None = None, step_names: dict[int, str] | None = None,
) -> Run | None:
    """Output lines as `logs` prints them, flushed when `lines` pauses (a follow waits) and at the end.

    Only LogLine items are printed; any other item (a follow's events: it has caught up, the
    run changed) flushes, so a follower sees each line as soon as it is stored.
    """
    out = out or sys.stdout.buffer
    ended: Run | None = None
    step: int | None = -1
    for line in lines:
        if not isinstance(line, LogLine):
            ended = getattr(line, "run", None) if type(line).__name__ == "Ended" else ended
            out.flush()
            continue
        if step_names is not None and line.step_index != step:
            # `step_names`: a header where the output passes from one step to the next
            step = line.step_index
            title = "(no step)" if step is None else f"step {step + 1}: {fmt.safe_text(step_names.get(step, '?'))}"
            header = f"── {title} ──"
            out.write(((HEADER_ON + header.encode() + STYLE_OFF) if color else header.encode()) + b"\n")
        text = line.text
        if not raw and b"\r" in text:  # a `\r` progress bar: its last state, as a terminal left it
            text = text.rstrip(b"\r").rsplit(b"\r", 1)[-1]
        text = text if raw else fmt.safe_text(text).encode()
        if line.cut and not raw:
            text += f" [... {line.cut:,} more bytes not kept]".encode()
        if color and not raw and line.stream == STDERR:
            text = STDERR_ON + text + STYLE_OFF
        if timestamps:
            text = f"{fmt.clock_time(line.ts)} ".encode() + text
        out.write(text + b"\n")
    out.flush()
    return ended

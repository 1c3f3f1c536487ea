"""How the history commands print: run tables, run reports, log lines, JSON. Writes to stdout."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

from stepflow import fmt, history
from stepflow.config import Settings
from stepflow.errors import NotFoundError, StoreError
from stepflow.store import SqliteStore, open_store
from stepflow.store.models import STREAM_NAMES, Run


@contextlib.contextmanager
def reading(settings: Settings) -> Iterator[SqliteStore]:
    """Open the store for the history commands; a missing store is an error, not a new file."""
    if not settings.database.exists():
        raise StoreError(f"no store at {settings.database}; record a run with \"stepflow run -- CMD\"")
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def print_run_table(runs: list[Run]) -> None:
    if not runs:
        print("no runs", file=sys.stderr)
        return
    rows = []
    for run in runs:
        s = history.run_summary(run)
        rows.append((
            run.id[:8], fmt.safe_text(run.name)[:30], run.status,
            f"{run.completed_steps}/{run.total_steps}", fmt.duration(s["duration_s"]),
            (s["started_at"] or s["created_at"] or "")[:19].replace("T", " "),
        ))
    header = ("ID", "NAME", "STATUS", "STEPS", "TIME", "STARTED")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_run_report(d: dict[str, Any]) -> None:
    safe = fmt.safe_text
    print(f"run {d['id']}  {safe(d['name'])}  {d['status']}  exit {d['exit_code']}")
    print(f"  command  {safe(d['command'])}")
    print(f"  started  {d['started_at']}   took {fmt.duration(d['duration_s'])}")
    if d.get("error_message"):
        print(f"  error    {safe(d['error_message'])}")
    if d["tags"]:
        print(f"  tags     {safe(', '.join(map(str, d['tags'])) if isinstance(d['tags'], list) else str(d['tags']))}")
    for key, value in (d["metadata"] or {}).items() if isinstance(d["metadata"], dict) else ():
        print(f"  meta     {safe(str(key))}={safe(str(value))}")
    print(f"steps ({d['completed_steps']}/{d['total_steps']} completed)")
    for step in d["steps"]:
        line = f"  {step['index'] + 1:>3}. {step['status']:<9} {fmt.duration(step['duration_s']):>7}  {safe(step['name'])}"
        if step["stop_on_error"]:
            line += "  [stop_on_error]"
        print(line)
        if step["error_message"]:
            print(f"        error: {safe(step['error_message'])}")
    if d["artifacts"]:
        print("artifacts")
        for art in d["artifacts"]:
            print(f"  {safe(art['path'])}  {art['size']} bytes" + (f"  {safe(art['description'])}" if art["description"] else ""))
    for warning in d["warnings"] if isinstance(d["warnings"], list) else ():
        print(f"warning: {safe(str(warning))}")


def print_logs(
    store: SqliteStore, ref: str, *, step: str | None, stream: str | None, grep: str | None,
    timestamps: bool, raw: bool,
) -> None:
    run = store.resolve(ref)
    step_index = None
    if step is not None:
        step_index = _step_index(store, run, step)
    stream_no = {v: k for k, v in STREAM_NAMES.items()}[stream] if stream else None
    out = sys.stdout.buffer
    for line in store.log_lines(run.id, step_index=step_index, stream=stream_no,
                                grep=grep.encode() if grep else None):
        text = line.text if raw else fmt.safe_text(line.text).encode()
        if timestamps:
            text = f"{fmt.clock_time(line.ts)} ".encode() + text
        out.write(text + b"\n")
    out.flush()


def _step_index(store: SqliteStore, run: Run, step: str) -> int:
    steps = store.steps(run.id)
    named = [s for s in steps if s.name == step]
    if named:
        return named[0].step_index
    if step.lstrip("-").isdigit():
        index = int(step)
        if any(s.step_index == index for s in steps):
            return index
    names = ", ".join(repr(s.name) for s in steps[:10]) or "none"
    raise NotFoundError(f"run {run.id[:8]} has no step {step!r}; steps: {names}")

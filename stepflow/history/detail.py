"""Runs as the history commands (and the coming server) show them: JSON-ready dicts and times
with offsets. Pure. The keys are public: docs/SPEC.md section 3 names them."""

from __future__ import annotations

from datetime import datetime

from stepflow import legacy_fields as legacy
from stepflow.store import zone
from stepflow.store.base import Artifact, Run, Step

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any


def parse_time(text: str | None) -> datetime | None:
    """A stored time as an aware datetime: naive legacy values are in the zone the store
    recorded at migration (stepflow.store.zone), else in local time."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return zone.aware(value)


def iso_out(text: str | None) -> str | None:
    """A stored time as ISO 8601 with a UTC offset; text that is not a time is kept as it is."""
    value = parse_time(text)
    return value.isoformat() if value is not None else text


def seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return None
    return round((b - a).total_seconds(), 6)


def _typed(key: str, value: Any, kind: type) -> dict[str, Any]:
    """`key` with a value of the type the JSON promises (empty when NULL); a legacy value that
    is not (malformed JSON, kept as it was) also goes out as text under `<key>_raw`."""
    if isinstance(value, kind):
        return {key: value}
    if value is None:
        return {key: kind()}
    return {key: kind(), f"{key}_raw": value if isinstance(value, str) else str(value)}


def run_summary(run: Run) -> dict[str, Any]:
    """The keys of `ls --json` (docs/SPEC.md section 3)."""
    return {
        "id": run.id,
        "name": run.name,
        "command": run.command,
        "status": run.status,
        "exit_code": run.exit_code,
        "created_at": iso_out(run.created_at),
        "started_at": iso_out(run.started_at),
        "completed_at": iso_out(run.completed_at),
        "duration_s": seconds_between(run.started_at, run.completed_at),
        "host": run.host,
        **_typed("tags", run.tags, list),
        "total_steps": run.total_steps,
        "completed_steps": run.completed_steps,
    }


def step_detail(step: Step) -> dict[str, Any]:
    return {
        "index": step.step_index,
        "name": step.name,
        "status": step.status,
        "started_at": iso_out(step.started_at),
        "completed_at": iso_out(step.completed_at),
        "duration_s": seconds_between(step.started_at, step.completed_at),
        "error_message": step.error_message,
        "stop_on_error": bool(step.stop_on_error),
        "estimated_duration": step.estimated_duration,
        "description": step.description or None,
        **_typed("metadata", step.metadata, dict),
        "cpu_seconds": step.cpu_seconds,
        "peak_rss": step.peak_rss,
        "max_processes": step.max_processes,
        **legacy.step_fields(step),
    }


def artifact_detail(artifact: Artifact, steps_by_id: dict[str, Step]) -> dict[str, Any]:
    step = steps_by_id.get(artifact.step_id or "")
    return {
        "name": artifact.name,
        "description": artifact.description,
        "path": artifact.file_path,
        "source_path": artifact.source_path,
        "size": artifact.file_size,
        "sha256": artifact.sha256,
        "mime_type": artifact.mime_type,
        "step": step.name if step else None,
        "step_index": step.step_index if step else None,
        **legacy.artifact_fields(artifact),
    }


def run_detail(run: Run, steps: list[Step], artifacts: list[Artifact]) -> dict[str, Any]:
    """The keys of `show --json`: the summary plus steps, artifacts, metadata and more."""
    by_id = {s.id: s for s in steps}
    return {
        **run_summary(run),
        "working_directory": run.working_directory,
        "error_message": run.error_message,
        "user": run.user_name,
        "host": run.host,
        **_typed("metadata", run.metadata, dict),
        "warnings": run.warnings if run.warnings is not None else [],
        "line_count": run.line_count,
        "lost_lines": run.lost_lines,
        "cpu_seconds": run.cpu_seconds,
        "peak_rss": run.peak_rss,
        "max_processes": run.max_processes,
        "pid": run.pid,
        **legacy.run_fields(run),
        "steps": [step_detail(s) for s in steps],
        "artifacts": [artifact_detail(a, by_id) for a in artifacts],
    }

"""GitHub Actions out: a `::group::` per step, `::error` for a failed one, the step summary.

GitHub groups do not nest: a step that starts while another is open closes that group first,
and the outer step's end then closes nothing. GitHub shows no group durations, so each group's
last line says how the step ended and how long it took. A failed step's `::error` is that
group's last line: GitHub lists the annotation at the top of the job, and the GitHub dialect
reading the log back fails the step, not the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from stepflow.ci import RunFinished, StepBegan, StepFinished, display_name, plain_text
from stepflow.fmt import duration


def escape_data(text: str) -> str:
    """A command's message in the runner's escapes: `%` as %25, CR as %0D, LF as %0A."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value: the message escapes plus `:` as %3A and `,` as %2C."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


class GithubEmitter:
    """Prints stepflow's steps as GitHub Actions workflow commands."""

    name: ClassVar[str] = "github"

    def __init__(self) -> None:
        self._open: int | None = None  # the index of the step whose group is open

    def step_started(self, step: StepBegan) -> list[str]:
        lines = ["::endgroup::"] if self._open is not None else []
        self._open = step.index
        return [*lines, f"::group::{escape_data(display_name(step.name, step.index))}"]

    def step_ended(self, step: StepFinished) -> list[str]:
        lines: list[str] = []
        if self._open == step.index:
            lines.append(f"{display_name(step.name, step.index)}: {step.status} in {duration(step.duration_s)}")
        if step.status == "failed":
            title = escape_property(f"step {display_name(step.name, step.index)} failed")
            lines.append(f"::error title={title}::{escape_data(step.error or 'the step failed')}")
        if self._open == step.index:
            lines.append("::endgroup::")
            self._open = None
        return lines

    def run_finished(self, run: RunFinished) -> list[str]:
        if self._open is None:
            return []
        self._open = None
        return ["::endgroup::"]


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell: one line, `|` and `\\` escaped."""
    return plain_text(text).replace("\\", "\\\\").replace("|", "\\|") or " "


_ICONS = {"completed": "✅", "failed": "❌", "skipped": "⏭️", "running": "⏳", "pending": "⏳"}


def step_summary(steps: Sequence[StepFinished], run: RunFinished, *, title: str) -> str:
    """The Markdown a run appends to $GITHUB_STEP_SUMMARY: a heading and a table of the steps
    (index, name, status, duration, error), then the run's status and duration."""
    lines = [
        f"### {_cell(title)}",
        "",
        "| # | Step | Status | Duration | Error |",
        "|--:|------|--------|---------:|-------|",
    ]
    for step in steps:
        icon = _ICONS.get(step.status, "")
        error = _cell(step.error) if step.error else " "
        lines.append(f"| {step.index} | {_cell(step.name)} | {icon} {_cell(step.status)} | {duration(step.duration_s)} "
                     f"| {error} |")
    exit_text = f", exit status {run.exit_code}" if run.exit_code is not None else ""
    lines += ["", f"Run **{_cell(run.status)}** in {duration(run.duration_s)}{exit_text}.", ""]
    return "\n".join(lines)

"""Buildkite out: a `--- ` group per step (Buildkite times each group); a failed step prints
`^^^ +++`, which opens its group, then its error. Buildkite groups do not nest: a nested step
starts a group of its own."""

from __future__ import annotations

from typing import ClassVar

from stepflow.ci import RunFinished, StepBegan, StepFinished, display_name, plain_text
from stepflow.dialects.buildkite import EXPAND


class BuildkiteEmitter:
    """Prints stepflow's steps as Buildkite group headers. Stateless."""

    name: ClassVar[str] = "buildkite"

    def step_started(self, step: StepBegan) -> list[str]:
        name = display_name(step.name, step.index)
        # Buildkite (and the dialect) read a header of nothing but U+FFFD as no name
        return [f"--- {name if name.strip(chr(0xFFFD) + ' ') else f'step {step.index}'}"]

    def step_ended(self, step: StepFinished) -> list[str]:
        if step.status != "failed":
            return []
        message = plain_text(step.error or "")
        said = f"step {display_name(step.name, step.index)} failed" + (f": {message}" if message else "")
        return [EXPAND, f"\x1b[31m{said}\x1b[0m"]

    def run_finished(self, run: RunFinished) -> list[str]:
        return []

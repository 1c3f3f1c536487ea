"""TeamCity out: a block per step (TeamCity times and nests blocks), and a build problem for a
failed step, its identity `stepflow-step-<index>` so a rerun's problem matches the last one."""

from __future__ import annotations

from typing import ClassVar

from stepflow.ci import RunFinished, StepBegan, StepFinished, display_name

_ESCAPES = {"|": "||", "'": "|'", "\n": "|n", "\r": "|r", "[": "|[", "]": "|]", "\u0085": "|x", "\u2028": "|l",
            "\u2029": "|p"}
DESCRIPTION_LIMIT = 4000  # TeamCity truncates a build problem's description here


def escape(text: str) -> str:
    """A value in TeamCity's `|` escapes; other controls as `|0xNNNN` so no line breaks early."""
    out = []
    for char in text:
        mapped = _ESCAPES.get(char)
        if mapped is not None:
            out.append(mapped)
        elif char < " " or "\x7f" <= char <= "\x9f":
            out.append(f"|0x{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out)


class TeamcityEmitter:
    """Prints stepflow's steps as TeamCity service messages."""

    name: ClassVar[str] = "teamcity"

    def __init__(self) -> None:
        self._names: dict[int, str] = {}

    def step_started(self, step: StepBegan) -> list[str]:
        name = display_name(step.name, step.index)
        self._names[step.index] = name
        return [f"##teamcity[blockOpened name='{escape(name)}' description='step {step.index}']"]

    def step_ended(self, step: StepFinished) -> list[str]:
        name = self._names.pop(step.index, display_name(step.name, step.index))
        lines = []
        if step.status == "failed":
            description = f"step {name} failed" + (f": {step.error}" if step.error else "")
            lines.append(f"##teamcity[buildProblem description='{escape(description[:DESCRIPTION_LIMIT])}' "
                         f"identity='stepflow-step-{step.index}']")
        lines.append(f"##teamcity[blockClosed name='{escape(name)}']")
        return lines

    def run_finished(self, run: RunFinished) -> list[str]:
        return []

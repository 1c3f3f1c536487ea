"""GitLab CI out: a collapsible section per step, with its UNIX times, so GitLab shows durations.

Section names allow only `[A-Za-z0-9_.-]`: a step's is `step_<index>_<name>` with every other
character as `_` (at most 64), unique within a run by its index; the header shows the name as
it is. Sections nest as steps do. A failed step prints its error in red inside its section.
"""

from __future__ import annotations

from typing import ClassVar

from stepflow.ci import RunFinished, StepBegan, StepFinished, display_name, plain_text

ERASE = "\x1b[0K"
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def section_name(name: str, index: int) -> str:
    """`step_<index>_<name>` with what GitLab refuses in a section name as `_`, 64 at most."""
    slug = "".join(c if c in _ALLOWED else "_" for c in name)[:48]
    return f"step_{index}_{slug}".rstrip("_") if slug.strip("_") else f"step_{index}"


class GitlabEmitter:
    """Prints stepflow's steps as GitLab section markers."""

    name: ClassVar[str] = "gitlab"

    def __init__(self, *, collapsed: bool = False) -> None:
        self._collapsed = collapsed
        self._sections: dict[int, str] = {}

    def step_started(self, step: StepBegan) -> list[str]:
        section = section_name(step.name, step.index)
        self._sections[step.index] = section
        options = "[collapsed=true]" if self._collapsed else ""
        header = display_name(step.name, step.index)
        return [f"{ERASE}section_start:{int(step.at)}:{section}{options}\r{ERASE}{header}"]

    def step_ended(self, step: StepFinished) -> list[str]:
        section = self._sections.pop(step.index, section_name(step.name, step.index))
        lines = []
        if step.status == "failed":
            message = plain_text(step.error or "")
            said = f"step {display_name(step.name, step.index)} failed" + (f": {message}" if message else "")
            lines.append(f"\x1b[31;1m{said}\x1b[0m")
        lines.append(f"{ERASE}section_end:{int(step.at)}:{section}\r{ERASE}")
        return lines

    def run_finished(self, run: RunFinished) -> list[str]:
        return []

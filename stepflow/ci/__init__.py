"""Native dialect out: stepflow's steps printed in the language of the CI a run is under.

Under GitHub Actions a step becomes a `::group::`, under GitLab a collapsible section with its
times, under Buildkite a `--- ` group, under TeamCity a block; a failed step shows as that CI's
error or build problem. An emitter is told step-level facts and returns the text lines to
print (no newline); it never prints. One emitter object serves one run: some keep state (the
open GitHub group, the GitLab section names).

`--ci none|auto|github|gitlab|buildkite|teamcity` picks one (`resolve_ci`); `auto`, the
default, is the CI the environment names (stepflow.dialects.detect_ci).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import ClassVar, Protocol

from stepflow.dialects import detect_ci
from stepflow.record import record

EMITTERS: dict[str, str] = {
    "github": "stepflow.ci.github:GithubEmitter",
    "gitlab": "stepflow.ci.gitlab:GitlabEmitter",
    "buildkite": "stepflow.ci.buildkite:BuildkiteEmitter",
    "teamcity": "stepflow.ci.teamcity:TeamcityEmitter",
}
CI_CHOICES = ("none", "auto", *EMITTERS)


@record(frozen=True)
class StepBegan:
    """A step started: its name, its 1-based index in the run, its UNIX time."""

    name: str
    index: int
    at: float


@record(frozen=True)
class StepFinished:
    """A step ended with `status` (completed, failed, skipped) after `duration_s` seconds."""

    name: str
    index: int
    status: str
    at: float
    duration_s: float | None = None
    error: str | None = None


@record(frozen=True)
class RunFinished:
    """The run ended: its status, the command's exit status, its UNIX time and duration."""

    status: str
    exit_code: int | None
    at: float
    duration_s: float | None = None


class Emitter(Protocol):
    """One CI's language for stepflow's steps. `Emitter()` takes no arguments."""

    name: ClassVar[str]

    def step_started(self, step: StepBegan) -> list[str]: ...

    def step_ended(self, step: StepFinished) -> list[str]: ...

    def run_finished(self, run: RunFinished) -> list[str]: ...


def resolve_ci(option: str, env: Mapping[str, str]) -> str | None:
    """The emitter name `--ci option` asks for, None for none (or auto outside any CI).

    Raises ValueError with a one-line message for an unknown value."""
    value = option.strip().lower()
    if value == "none":
        return None
    if value == "auto":
        return detect_ci(env)
    if value not in EMITTERS:
        raise ValueError(f"unknown --ci value {option!r}; choose from {', '.join(CI_CHOICES)}")
    return value


def load_emitter(name: str) -> type[Emitter]:
    """The emitter class registered as `name` (KeyError for an unknown name)."""
    module, _, attr = EMITTERS[name].partition(":")
    cls: type[Emitter] = getattr(importlib.import_module(module), attr)
    return cls


def one_line(text: str) -> str:
    """`text` on one line: CR, LF and the other line breaks as spaces, outer space trimmed."""
    return " ".join(text.splitlines()).strip() if text else ""


def plain_text(text: str) -> str:
    """`text` fit for a CI's log: one line, no control characters (an escape sequence in a
    step's name or error must not steer the log viewer)."""
    return "".join(c for c in one_line(text) if not (c < " " or "\x7f" <= c <= "\x9f")).strip()


def display_name(name: str, index: int) -> str:
    """A step's name as `plain_text`, `step <index>` when nothing is left."""
    return plain_text(name) or f"step {index}"


__all__ = ["CI_CHOICES", "EMITTERS", "Emitter", "RunFinished", "StepBegan", "StepFinished", "display_name",
           "load_emitter", "one_line", "plain_text", "resolve_ci"]

"""Marker dialects by name: `--markers stepflow,github` picks which ones a run reads.

Each dialect lives in a module of this package and is imported only when a run asks for it.
`base.py` holds the protocol and the markers every dialect speaks in.
"""

from __future__ import annotations

from collections.abc import Mapping

from stepflow.dialects.base import Dialect
from stepflow.record import record

# name -> "module:Class", imported on first use so a run pays only for the dialects it reads.
REGISTRY: dict[str, str] = {
    "stepflow": "stepflow.dialects.stepflow:StepflowDialect",
    "github": "stepflow.dialects.github:GithubDialect",
    "gitlab": "stepflow.dialects.gitlab:GitlabDialect",
    "buildkite": "stepflow.dialects.buildkite:BuildkiteDialect",
    "teamcity": "stepflow.dialects.teamcity:TeamcityDialect",
}

# The CI a run is under, told by the variable each one sets, and the dialect it speaks.
CI_VARIABLES: dict[str, str] = {
    "GITHUB_ACTIONS": "github",
    "GITLAB_CI": "gitlab",
    "BUILDKITE": "buildkite",
    "TEAMCITY_VERSION": "teamcity",
}


def detect_ci(env: Mapping[str, str]) -> str | None:
    """The dialect of the CI this process runs under, or None outside any CI."""
    for variable, name in CI_VARIABLES.items():
        if env.get(variable):
            return name
    return None


def load(name: str) -> type[Dialect]:
    """The dialect class registered as `name` (KeyError for an unknown name)."""
    module, _, attr = REGISTRY[name].partition(":")
    cls: type[Dialect] = getattr(__import__(module, fromlist=[attr]), attr)
    return cls


# `--markers` words that are not dialect names: where stepflow markers may stand, and the default.
POSITIONS = ("start", "anywhere")
AUTO = "auto"
MARKER_CHOICES = (*POSITIONS, AUTO, *REGISTRY)


@record(frozen=True)
class MarkerSelection:
    """What `--markers` asks a run to read: dialect names in order, and whether stepflow's
    own markers may stand anywhere in a line (`anywhere`) or only open it (`start`)."""

    names: tuple[str, ...]
    anywhere: bool = False


def select_markers(option: str, env: Mapping[str, str]) -> MarkerSelection:
    """Resolve a `--markers` value (comma separated words of MARKER_CHOICES).

    `auto` (the default) reads stepflow markers plus the dialect of the CI the environment
    names (detect_ci): `--- `, `+++ ` and `::` lines are common in ordinary output (diffs,
    YAML, C++), so a CI's dialect is read unasked only under that CI. `start` and `anywhere`
    read stepflow markers at the start of a line or anywhere in it, as before. A dialect
    named alone is read alone: `--markers github` does not read stepflow markers.

    Raises ValueError with a one-line message for an unknown or contradictory value.
    """
    words = [word.strip().lower() for word in option.split(",")]
    names: list[str] = []
    positions: set[str] = set()
    choices = (*POSITIONS, AUTO, *REGISTRY)  # the registry as it is now: a test or plugin may add one
    for word in words:
        if word not in choices:
            shown = word or option
            raise ValueError(f"unknown --markers value {shown!r}; choose from {', '.join(choices)}")
        if word in POSITIONS:
            positions.add(word)
            names.append("stepflow")
        elif word == AUTO:
            names.append("stepflow")
            ci = detect_ci(env)
            if ci is not None:
                names.append(ci)
        else:
            names.append(word)
    if len(positions) > 1:
        raise ValueError("--markers takes one of start or anywhere, not both")
    return MarkerSelection(tuple(dict.fromkeys(names)), anywhere="anywhere" in positions)


def names_for(option: str, env: Mapping[str, str]) -> list[str]:
    """The dialect names a `--markers` value reads, stepflow's first (see select_markers)."""
    return list(select_markers(option, env).names)


__all__ = [
    "AUTO",
    "CI_VARIABLES",
    "MARKER_CHOICES",
    "POSITIONS",
    "REGISTRY",
    "Dialect",
    "MarkerSelection",
    "detect_ci",
    "load",
    "names_for",
    "select_markers",
]

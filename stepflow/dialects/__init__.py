"""Marker dialects by name: `--markers stepflow,github` picks which ones a run reads.

Each dialect lives in a module of this package and is imported only when a run asks for it.
`base.py` holds the protocol and the markers every dialect speaks in.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from stepflow.dialects.base import Dialect

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
    cls: type[Dialect] = getattr(importlib.import_module(module), attr)
    return cls


__all__ = ["CI_VARIABLES", "REGISTRY", "Dialect", "detect_ci", "load"]

"""Buildkite log groups as flat steps.

    --- Building        a step starts (the open one completes first), collapsed in Buildkite
    +++ Testing         the same, shown expanded
    ~~~ Cleaning up     the same, collapsed and de-emphasized (not bold) in Buildkite
    ^^^ +++             expand the previous group

The marker opens the line: escape sequences may come first (a coloured group name), white
space may not (an indented `--- ` is YAML or a diff, not a group). `--- ` with no name is
ordinary output (Buildkite's "empty expanded group" trick, `+++ ` and a space, included).
Each kind is kept as the step's `group` parameter (collapsed, expanded, deemphasized).

`^^^ +++` does not end or fail anything: Buildkite scripts print it when something went
wrong so the group with the problem is shown open, but the command's exit status is what
says whether the step failed. stepflow records it as `expanded=true` metadata on the
running step, which the Buildkite emitter prints back for a failed step.
"""

from __future__ import annotations

from typing import ClassVar

from stepflow.dialects.base import Marker, Meta, StepStart
from stepflow.dialects.text import ANSI_RE, clean_name

EXPAND = "^^^ +++"
_KINDS = {"--- ": "collapsed", "+++ ": "expanded", "~~~ ": "deemphasized"}


def _lstrip_escapes(text: str) -> str:
    position = 0
    while position < len(text) and text[position] == "\x1b":
        match = ANSI_RE.match(text, position)
        if match is None:
            break
        position = match.end()
    return text[position:]


class BuildkiteDialect:
    """Reads Buildkite group headers. Stateless."""

    name: ClassVar[str] = "buildkite"
    needles: ClassVar[tuple[bytes, ...]] = (b"--- ", b"+++ ", b"~~~ ", b"^^^ +++")

    def parse(self, line: str) -> list[Marker]:
        text = _lstrip_escapes(line) if line.startswith("\x1b") else line
        kind = _KINDS.get(text[:4])
        if kind is None:
            if text.startswith("^^^") and text.rstrip() == EXPAND:
                return [Meta("expanded", "true")]
            return []
        name = clean_name(text[4:])
        # nothing but controls (`echo -e "+++ \032"`, Buildkite's all-collapsed trick) names nothing
        return [StepStart(name, {"group": kind})] if name.strip("\ufffd ") else []

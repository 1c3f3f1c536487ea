"""Buildkite group headers -> flat steps: a table and a fuzz test."""

from __future__ import annotations

import pytest
from dialect_helpers import fuzz_lines, parse_all
from hypothesis import given

from stepflow.dialects.base import Meta, StepStart
from stepflow.dialects.buildkite import BuildkiteDialect


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--- Building", [StepStart("Building", {"group": "collapsed"})]),
        ("+++ Running tests", [StepStart("Running tests", {"group": "expanded"})]),
        ("~~~ Cleaning up", [StepStart("Cleaning up", {"group": "deemphasized"})]),
        ("--- :rocket: Deploy  \r", [StepStart(":rocket: Deploy", {"group": "collapsed"})]),
        ("\x1b[1m--- \x1b[32mGreen\x1b[0m", [StepStart("Green", {"group": "collapsed"})]),
        ("^^^ +++", [Meta("expanded", "true")]),
        ("^^^ +++  \r", [Meta("expanded", "true")]),
        ("^^^ +++ more", []),
        ("--- ", []),
        ("+++ \x1a", []),
        ("---", []),
        ("  --- indented yaml", []),
        ("text --- in the middle", []),
        ("----- ruler", []),
        ("", []),
    ],
)
def test_line_to_markers(line: str, expected: list[object]) -> None:
    assert BuildkiteDialect().parse(line) == expected


def test_a_diff_header_is_a_group_under_this_dialect() -> None:
    # Why `--markers auto` reads Buildkite only under Buildkite: this is what `git diff` prints.
    assert BuildkiteDialect().parse("--- a/README.md") == [StepStart("a/README.md", {"group": "collapsed"})]


@given(fuzz_lines(["--- ", "+++ ", "~~~ ", "^^^ +++", "^^^", "\x1b[1m", "\x1b[", " ", "\r", ":rocket:"]))
def test_no_input_makes_it_raise(lines: list[str]) -> None:
    parse_all(BuildkiteDialect(), lines)

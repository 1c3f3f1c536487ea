"""GitLab CI section markers -> nested steps: a table, state across lines, and a fuzz test."""

from __future__ import annotations

import pytest
from dialect_helpers import fuzz_lines, parse_all
from hypothesis import given

from stepflow.dialects.base import BadMarker, StepEnd, StepStart
from stepflow.dialects.gitlab import GitlabDialect

E = "\x1b[0K"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"{E}section_start:1560896352:my_first_section[collapsed=true]\r{E}Header of the 1st section",
         [StepStart("Header of the 1st section", {"collapsed": True, "section": "my_first_section"}, nested=True, at=1560896352.0)]),
        ("section_start:1700000000:build", [StepStart("build", {"section": "build"}, nested=True, at=1700000000.0)]),
        (f"section_start:1700000000:build\r{E}", [StepStart("build", {"section": "build"}, nested=True, at=1700000000.0)]),
        (f"{E}section_start:1:a.b-c_d[collapsed=false,hide_duration=true]\r{E}\x1b[36;1mColoured\x1b[0;m",
         [StepStart("Coloured", {"collapsed": False, "hide_duration": True, "section": "a.b-c_d"}, nested=True, at=1.0)]),
        ("\x1b[32m  section_start:5:x\rHead", [StepStart("Head", {"section": "x"}, nested=True, at=5.0)]),
        (f"{E}section_end:1700000042:build\r{E}", [StepEnd("build", at=1700000042.0)]),
        ("section_end:1700000042:never_opened", [StepEnd("never_opened", at=1700000042.0)]),
        ("section_start:soon:build", [BadMarker("section_start", "a section marker needs a UNIX time, as section_start:1700000000:name")]),
        ("section_start:" + "9" * 40 + ":x", [BadMarker("section_start", "a section marker needs a UNIX time, as section_start:1700000000:name")]),
        ("section_end:12:", [BadMarker("section_end", "a section needs a name of letters, digits, '_', '.' or '-'")]),
        ("section_start:12:!bad", [BadMarker("section_start", "a section needs a name of letters, digits, '_', '.' or '-'")]),
        ("see section_start:12:x in the docs", []),
        ("section_starting soon", []),
        ("ordinary output", []),
    ],
)
def test_line_to_markers(line: str, expected: list[object]) -> None:
    assert GitlabDialect().parse(line) == expected


def test_the_runner_s_own_line_ends_one_section_and_starts_the_next() -> None:
    dialect = GitlabDialect()
    dialect.parse(f"{E}section_start:100:step_script\r{E}Executing step_script")
    line = f"section_end:160:step_script\r{E}{E}section_start:160:cleanup_file_variables\r{E}{E}\x1b[36;1mCleaning up\x1b[0;m"
    assert dialect.parse(line) == [
        StepEnd("Executing step_script", at=160.0),
        StepStart("Cleaning up", {"section": "cleanup_file_variables"}, nested=True, at=160.0),
    ]


def test_nested_sections_end_by_section_name_and_close_inner_ones() -> None:
    dialect = GitlabDialect()
    lines = [
        f"{E}section_start:10:outer\r{E}Outer work",
        f"{E}section_start:11:inner\r{E}Inner work",
        f"{E}section_start:12:deepest",
        f"{E}section_end:15:outer\r{E}",
        f"{E}section_end:16:inner\r{E}",
    ]
    markers = [dialect.parse(line) for line in lines]
    assert markers[0] == [StepStart("Outer work", {"section": "outer"}, nested=True, at=10.0)]
    assert markers[1] == [StepStart("Inner work", {"section": "inner"}, nested=True, at=11.0)]
    assert markers[2] == [StepStart("deepest", {"section": "deepest"}, nested=True, at=12.0)]
    # outer ends by its header's name; the recorder ends the steps opened inside it too
    assert markers[3] == [StepEnd("Outer work", at=15.0)]
    # inner was closed with outer: its end names the section, which the recorder ignores
    assert markers[4] == [StepEnd("inner", at=16.0)]


def test_a_repeated_section_name_ends_the_innermost() -> None:
    dialect = GitlabDialect()
    dialect.parse("section_start:1:s\rFirst")
    dialect.parse("section_start:2:s\rSecond")
    assert dialect.parse("section_end:3:s") == [StepEnd("Second", at=3.0)]
    assert dialect.parse("section_end:4:s") == [StepEnd("First", at=4.0)]


@given(fuzz_lines(["section_start:", "section_end:", "1700000000", ":", "name", "[collapsed=true]", "[", "]", "=",
                   ",", "\r", E, "\x1b[36;1m", " ", "-", "."]))
def test_no_input_makes_it_raise(lines: list[str]) -> None:
    parse_all(GitlabDialect(), lines)

"""GitHub Actions workflow commands -> markers: a table, a fuzz test, and @actions/core's own output."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dialect_helpers import fuzz_lines, parse_all
from hypothesis import given

from stepflow.dialects.base import AddMask, BadMarker, Notice, StepEnd, StepError, StepStart
from stepflow.dialects.github import GithubDialect

NODE_FOLDER = Path(__file__).parent / "node"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("::group::Build the app", [StepStart("Build the app")]),
        ("  ::group::Build  \r", [StepStart("Build")]),
        ("::GROUP::Shouting", [StepStart("Shouting")]),
        ("::Group::Mixed", [StepStart("Mixed")]),
        ("::group::", [BadMarker("group", "group has no name")]),
        ("::group::100%25 done", [StepStart("100% done")]),
        ("::endgroup::", [StepEnd()]),
        ("::EndGroup::", [StepEnd()]),
        ("::error::it broke", [StepError("it broke", ends=False)]),
        (
            "::error file=app.js,line=10,col=15,endLine=12,endColumn=3,title=Bad thing::Missing semicolon",
            [StepError("Missing semicolon", ends=False,
                       metadata={"file": "app.js", "line": 10, "col": 15, "endLine": 12, "endColumn": 3, "title": "Bad thing"})],
        ),
        ("::error title=a%3Ab%2Cc,file=x%25y::two%0Alines%0D", [StepError("two\nlines\r", ends=False, metadata={"title": "a:b,c", "file": "x%y"})]),
        ("::error line=ten::m", [StepError("m", ends=False, metadata={"line": "ten"})]),
        ("::error junk,=x,line=2::m", [StepError("m", ends=False, metadata={"line": 2})]),
        ("::error::%3A stays in data", [StepError("%3A stays in data", ends=False)]),
        ("::warning::careful", [Notice("warning", "careful")]),
        ("::notice title=Hi::hello", [Notice("notice", "hello", {"title": "Hi"})]),
        ("::debug::details", [Notice("debug", "details")]),
        ("::WARNING::loud", [Notice("warning", "loud")]),
        ("::add-mask::s3cr3t", [AddMask("s3cr3t")]),
        ("::add-mask::a%25b", [AddMask("a%b")]),
        ("::add-mask::", [BadMarker("add-mask", "add-mask has no value")]),
        ("::set-output name=x::1", []),
        ("::unknown::x", []),
        ("std::vector<int> v;", []),
        ("a ::group::not at the start", []),
        (":: group::space", []),
        ("::group no end", []),
        ("", []),
    ],
)
def test_line_to_markers(line: str, expected: list[object]) -> None:
    assert GithubDialect().parse(line) == expected


def test_stop_commands_parses_nothing_until_the_token() -> None:
    dialect = GithubDialect()
    lines = ["::group::a", "::stop-commands::pause123", "::group::hidden", "::error::not one", "::endgroup::",
             "::other::", "::PAUSE123::", "::endgroup::"]
    assert [dialect.parse(line) for line in lines] == [[StepStart("a")], [], [], [], [], [], [], [StepEnd()]]


def test_stop_commands_needs_a_token() -> None:
    dialect = GithubDialect()
    assert dialect.parse("::stop-commands::") == [BadMarker("stop-commands", "stop-commands needs a token, as ::stop-commands::TOKEN")]
    assert dialect.parse("::group::still read") == [StepStart("still read")]


def test_the_resume_line_must_be_the_token_alone() -> None:
    dialect = GithubDialect()
    dialect.parse("::stop-commands::tok")
    assert dialect.parse("::tok::trailing") == []
    assert dialect.parse("::group::x") == []
    assert dialect.parse("::tok::") == []
    assert dialect.parse("::group::x") == [StepStart("x")]


@given(fuzz_lines(["::", "group", "endgroup", "error", "warning", "add-mask", "stop-commands", "::t::", "t",
                   " ", ",", "=", "%", "%0A", "%25", "%3A", "line=", "\r", "\x1b[31m"]))
def test_no_input_makes_it_raise(lines: list[str]) -> None:
    parse_all(GithubDialect(), lines)


# --- the real emitter: @actions/core from npm ------------------------------------------------

SCRIPT = r"""
const core = require('@actions/core');
core.startGroup('Install deps');
core.info('plain output');
core.setSecret('hunter2');
core.endGroup();
core.startGroup('Test: unit, 100%');
core.error('2 tests failed\nsee above', {title: 'Tests: failed', file: 'src/a,b.js', startLine: 7, startColumn: 3});
core.warning('slow test');
core.notice('coverage 91%', {title: 'Coverage'});
core.debug('a debug line');
core.endGroup();
const token = 'stop-' + 'abc';
console.log('::stop-commands::' + token);
core.startGroup('not a group');
console.log('::' + token + '::');
core.error('after resume');
"""


@pytest.fixture(scope="module")
def actions_core() -> Path:
    """tests/node with @actions/core installed from npm (once; .ci/run installs it too)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("STEPFLOW_REQUIRE_NODE"):
            pytest.fail("STEPFLOW_REQUIRE_NODE is set but node or npm is not on PATH")
        pytest.skip("node and npm are needed to run @actions/core")
    if not (NODE_FOLDER / "node_modules" / "@actions" / "core").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_FOLDER, check=True, capture_output=True, timeout=300)
    return NODE_FOLDER


def test_actions_core_output_reads_back(actions_core: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    done = subprocess.run(["node", "-e", SCRIPT], cwd=actions_core, env=env, capture_output=True, text=True, check=True, timeout=120)
    dialect = GithubDialect()
    markers = [m for line in done.stdout.split("\n") for m in dialect.parse(line)]
    assert markers == [
        StepStart("Install deps"),
        AddMask("hunter2"),
        StepEnd(),
        StepStart("Test: unit, 100%"),
        StepError("2 tests failed\nsee above", ends=False,
                  metadata={"title": "Tests: failed", "file": "src/a,b.js", "line": 7, "col": 3}),
        Notice("warning", "slow test"),
        Notice("notice", "coverage 91%", {"title": "Coverage"}),
        Notice("debug", "a debug line"),
        StepEnd(),
        StepError("after resume", ends=False),
    ]
    assert "plain output" in done.stdout.split("\n")

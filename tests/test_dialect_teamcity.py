"""TeamCity service messages -> markers: a table, tests across lines, a fuzz test, and the
`teamcity-messages` package's own output."""

from __future__ import annotations

import datetime
import io

import pytest
from dialect_helpers import fuzz_lines, parse_all
from hypothesis import given
from hypothesis import strategies as st
from teamcity.messages import TeamcityServiceMessages

from stepflow.dialects.base import Artifact, BadMarker, Notice, StepEnd, StepError, StepStart, TestResult
from stepflow.dialects.teamcity import TeamcityDialect, unescape

UNCLOSED = [BadMarker("teamcity", "a service message is not closed, or has no name")]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("##teamcity[blockOpened name='Deploy']", [StepStart("Deploy", nested=True)]),
        ("##teamcity[blockOpened name='Deploy' description='to prod']", [StepStart("Deploy", {"description": "to prod"}, nested=True)]),
        ("##teamcity[blockOpened name='It|'s |[x|] a||b |0x00e9']", [StepStart("It's [x] a|b é", nested=True)]),
        ("##teamcity[blockOpened timestamp='2026-01-01T00:00:00.000' name='T' flowId='1']", [StepStart("T", nested=True)]),
        ("##teamcity[blockOpened name='']", [BadMarker("blockOpened", "block has no name")]),
        ("##teamcity[blockClosed name='Deploy']", [StepEnd("Deploy")]),
        ("##teamcity[blockClosed]", [StepEnd()]),
        ("##teamcity[buildProblem description='DB down|nretry later']", [StepError("DB down\nretry later", ends=False)]),
        ("##teamcity[buildProblem description='x' identity='db']", [StepError("x", ends=False, metadata={"identity": "db"})]),
        ("##teamcity[buildProblem]", [BadMarker("buildProblem", "build problem has no description")]),
        ("##teamcity[message text='bad' status='ERROR' errorDetails='trace']",
         [StepError("bad", ends=False, metadata={"status": "ERROR", "errorDetails": "trace"})]),
        ("##teamcity[message text='worse' status='FAILURE']", [StepError("worse", ends=False, metadata={"status": "FAILURE"})]),
        ("##teamcity[message text='hmm' status='WARNING']", [Notice("warning", "hmm", {"status": "WARNING"})]),
        ("##teamcity[message text='just output']", []),
        ("##teamcity[progressMessage 'Compiling 3/10']", [Notice("progress", "Compiling 3/10")]),
        ("##teamcity[progressStart 'Tests']", [Notice("progress", "Tests")]),
        ("##teamcity[progressFinish 'Tests']", []),
        ("##teamcity[publishArtifacts 'dist/app.tar.gz']", [Artifact("dist/app.tar.gz")]),
        ("##teamcity[publishArtifacts 'a.txt => out|nlogs/*.log, b.bin']",
         [Artifact("a.txt", "=> out"), Artifact("logs/*.log"), Artifact("b.bin")]),
        ("##teamcity[testFailed name='lonely' message='m' details='d']", [TestResult("lonely", "failed", None, "m", "d")]),
        ("##teamcity[testIgnored name='skipped' message='later']", [TestResult("skipped", "ignored", None, "later")]),
        ("##teamcity[testFinished name='quick' duration='250']", [TestResult("quick", "passed", 0.25)]),
        ("##teamcity[testFinished name='odd' duration='soon']", [TestResult("odd", "passed")]),
        ("##teamcity[setParameter name='x' value='1']", []),
        ("##teamcity[blockOpened name='A'] ##teamcity[blockOpened name='B']",
         [StepStart("A", nested=True), StepStart("B", nested=True)]),
        ("log text ##teamcity[blockClosed name='A'] more", [StepEnd("A")]),
        ("##teamcity[blockOpened name='unclosed", UNCLOSED),
        ("##teamcity[blockOpened name='x'", UNCLOSED),
        ("##teamcity[]", UNCLOSED),
        ("##teamcity[blockOpened name=x]", UNCLOSED),
        ("##teamcity[blockOpened name='A'] ##teamcity[oops", [StepStart("A", nested=True), *UNCLOSED]),
        ("##TEAMCITY[blockOpened name='A']", []),
        ("no message here", []),
    ],
)
def test_line_to_markers(line: str, expected: list[object]) -> None:
    assert TeamcityDialect().parse(line) == expected


@pytest.mark.parametrize(
    ("escaped", "meant"),
    [("|'", "'"), ("|n", "\n"), ("|r", "\r"), ("|[", "["), ("|]", "]"), ("||", "|"), ("|x", "\u0085"),
     ("|l", "\u2028"), ("|p", "\u2029"), ("|0x263A", "\u263a"), ("|0xD800", "\ufffd"), ("|0x12", "|0x12"),
     ("|q", "|q"), ("|", "|"), ("a||n", "a|n"), ("plain", "plain")],
)
def test_bar_escapes(escaped: str, meant: str) -> None:
    assert unescape(escaped) == meant


def test_a_test_result_is_assembled_across_lines() -> None:
    dialect = TeamcityDialect()
    lines = [
        "##teamcity[testStarted name='a' flowId='1']",
        "##teamcity[testStarted name='a' flowId='2']",
        "##teamcity[testFailed name='a' flowId='1' message='boom' details='Traceback|n  x']",
        "##teamcity[testIgnored name='a' flowId='1' message='also ignored']",
        "##teamcity[testFinished name='a' flowId='2' duration='5']",
        "##teamcity[testFinished name='a' flowId='1' duration='1500']",
        "##teamcity[testStarted name='b']",
        "##teamcity[testIgnored name='b' message='flaky']",
        "##teamcity[testFinished name='b']",
    ]
    markers = [m for line in lines for m in dialect.parse(line)]
    assert markers == [
        TestResult("a", "passed", 0.005),
        TestResult("a", "failed", 1.5, "also ignored", "Traceback\n  x"),
        TestResult("b", "ignored", None, "flaky"),
    ]


def test_nothing_is_read_while_service_messages_are_disabled() -> None:
    dialect = TeamcityDialect()
    lines = [
        "##teamcity[disableServiceMessages]",
        "##teamcity[blockOpened name='hidden']",
        "##teamcity[buildProblem description='not one']",
        "##teamcity[enableServiceMessages]",
        "##teamcity[blockOpened name='seen']",
    ]
    assert [dialect.parse(line) for line in lines] == [[], [], [], [], [StepStart("seen", nested=True)]]


@given(fuzz_lines(["##teamcity[", "blockOpened", "blockClosed", "testStarted", "testFailed", "testFinished",
                   "disableServiceMessages", "enableServiceMessages", "publishArtifacts", " name=", "'", "|", "|'",
                   "|0x", "00e9", "]", "[", " ", "=", "duration='", "1", "flowId='"]))
def test_no_input_makes_it_raise(lines: list[str]) -> None:
    parse_all(TeamcityDialect(), lines)


# --- the real emitter: teamcity-messages from PyPI -------------------------------------------


def emitted(write: object) -> list[str]:
    buffer = io.BytesIO()
    messages = TeamcityServiceMessages(output=buffer, now=lambda: 1_700_000_000.0)
    write(messages)  # type: ignore[operator]
    return buffer.getvalue().decode("utf-8").split("\n")  # as stepflow splits: on LF only


def test_teamcity_messages_output_reads_back() -> None:
    def write(tc: TeamcityServiceMessages) -> None:
        tc.blockOpened("Build [x86] 'fast'|1")
        tc.progressMessage("compiling\nstill")
        tc.blockOpened("Inner")
        tc.testStarted("test_ok")
        tc.testFinished("test_ok", testDuration=datetime.timedelta(milliseconds=1234))
        tc.testStarted("test_bad", flowId="f1")
        tc.testFailed("test_bad", message="assert 1 == 2", details="Traceback:\r\n  line 3", flowId="f1")
        tc.testFinished("test_bad", flowId="f1")
        tc.testIgnored("test_skip", message="not today")
        tc.blockClosed("Build [x86] 'fast'|1")
        tc.buildProblem("Tests failed: 1", "tests")
        tc.customMessage("disk almost full", "WARNING")
        tc.customMessage("it broke", "ERROR", errorDetails="stack")
        tc.publishArtifacts("reports/*.xml => reports")
        tc.disableServiceMessages()
        tc.blockOpened("hidden")
        tc.enableServiceMessages()
        tc.blockOpened("Deploy \u00e9\u263a")
        tc.blockClosed("Deploy \u00e9\u263a")

    dialect = TeamcityDialect()
    markers = [m for line in emitted(write) for m in dialect.parse(line)]
    assert markers == [
        StepStart("Build [x86] 'fast'|1", nested=True),
        Notice("progress", "compiling\nstill"),
        StepStart("Inner", nested=True),
        TestResult("test_ok", "passed", 1.234),
        TestResult("test_bad", "failed", None, "assert 1 == 2", "Traceback:\r\n  line 3"),
        TestResult("test_skip", "ignored", None, "not today"),
        StepEnd("Build [x86] 'fast'|1"),
        StepError("Tests failed: 1", ends=False, metadata={"identity": "tests"}),
        Notice("warning", "disk almost full", {"status": "WARNING"}),
        StepError("it broke", ends=False, metadata={"status": "ERROR", "errorDetails": "stack"}),
        Artifact("reports/*.xml", "=> reports"),
        StepStart("Deploy \u00e9\u263a", nested=True),
        StepEnd("Deploy \u00e9\u263a"),
    ]


@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1))
def test_any_block_name_teamcity_messages_writes_reads_back(name: str) -> None:
    from stepflow.dialects.text import clean_name

    lines = emitted(lambda tc: tc.blockOpened(name))
    markers = [m for line in lines for m in TeamcityDialect().parse(line)]
    expected = clean_name(name)
    assert markers == ([StepStart(expected, nested=True)] if expected else [BadMarker("blockOpened", "block has no name")])

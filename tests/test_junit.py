"""JUnit XML export: steps as test cases, checked with a real parser (junitparser)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from conftest import StepflowRunner, py
from hypothesis import given
from hypothesis import strategies as st
from junitparser import Error, Failure, JUnitXml, Skipped

from stepflow.export.junit import junit_xml, steps_needing_output, xml_safe


def detail(**overrides: Any) -> dict[str, Any]:
    """A run as `stepflow show --json` prints it (the keys junit_xml reads, and a few more)."""
    run: dict[str, Any] = {
        "id": "r-1", "name": "deploy", "command": "bash deploy.sh", "status": "failed", "exit_code": 1,
        "started_at": "2026-12-03T15:04:05.678+01:00", "completed_at": "2026-12-03T15:04:17.678+01:00",
        "duration_s": 12.0, "host": "ci-7", "error_message": None, "tags": [], "metadata": {},
        "steps": [
            {"index": 1, "name": "build", "status": "completed", "duration_s": 2.5, "error_message": None, "metadata": {}},
            {"index": 2, "name": "test", "status": "failed", "duration_s": 7.25, "error_message": "3 tests failed",
             "metadata": {"tests": [
                 {"name": "test_ok", "status": "passed", "duration_s": 0.5},
                 {"name": "test_bad", "status": "failed", "duration_s": 1.5, "message": "assert 1 == 2", "details": "Traceback"},
                 {"name": "test_later", "status": "ignored", "message": "flaky"},
                 "not a test", {"status": "passed"},
             ]}},
            {"index": 3, "name": "deploy", "status": "skipped", "duration_s": None, "error_message": None, "metadata": {}},
        ],
    }
    run.update(overrides)
    return run


def parsed(text: str) -> JUnitXml:
    ET.fromstring(text.encode())  # well-formed XML first
    return JUnitXml.fromstring(text)


def test_steps_are_test_cases_and_tests_their_own_suite() -> None:
    report = parsed(junit_xml(detail(), outputs={2: "FAILED test_bad\n\x1b[31mred\x1b[0m"}))
    suites = list(report)
    assert [s.name for s in suites] == ["deploy", "deploy / test"]
    run, tests = suites
    assert (run.tests, run.failures, run.errors, run.skipped, run.time) == (3, 1, 0, 1, 12.0)
    assert run.hostname == "ci-7" and run.timestamp == "2026-12-03T14:04:05"
    cases = list(run)
    assert [(c.name, c.classname, c.time) for c in cases] == [("build", "deploy", 2.5), ("test", "deploy", 7.25),
                                                               ("deploy", "deploy", 0.0)]
    assert cases[0].is_passed
    assert isinstance(cases[1].result[0], Failure)
    assert cases[1].result[0].message == "3 tests failed"
    assert cases[1].system_out == "FAILED test_bad\nred"
    assert isinstance(cases[2].result[0], Skipped)
    test_cases = list(tests)
    assert [(c.name, c.classname) for c in test_cases] == [("test_ok", "deploy.test"), ("test_bad", "deploy.test"),
                                                           ("test_later", "deploy.test")]
    assert test_cases[0].is_passed and test_cases[0].time == 0.5
    assert test_cases[1].result[0].message == "assert 1 == 2"
    assert test_cases[1].result[0].text == "assert 1 == 2\nTraceback"
    assert isinstance(test_cases[2].result[0], Skipped) and test_cases[2].result[0].message == "flaky"
    root = ET.fromstring(junit_xml(detail()).encode())
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "6", "failures": "2", "errors": "0", "skipped": "2"}
    properties = {p.name: p.value for p in run.properties()}
    assert properties == {"stepflow.run_id": "r-1", "stepflow.command": "bash deploy.sh", "stepflow.status": "failed",
                          "stepflow.exit_code": "1"}


def test_a_run_that_failed_without_a_failed_step_fails_the_report() -> None:
    steps = [{"index": 1, "name": "only", "status": "completed", "duration_s": 1.0}]
    report = parsed(junit_xml(detail(status="timed_out", exit_code=124, error_message="timed out after 5s", steps=steps)))
    cases = list(next(iter(report)))
    assert [c.name for c in cases] == ["only", "(run)"]
    assert cases[1].result[0].message == "the run timed_out, exit status 124: timed out after 5s"
    passed = parsed(junit_xml(detail(status="completed", exit_code=0, steps=steps)))
    assert [c.name for c in next(iter(passed))] == ["only"]


def test_a_repeated_step_name_is_told_apart() -> None:
    steps = [{"index": i, "name": "retry", "status": "failed" if i < 2 else "completed", "duration_s": 1.0} for i in range(3)]
    cases = list(next(iter(parsed(junit_xml(detail(steps=steps))))))
    assert [c.name for c in cases] == ["retry", "retry (2)", "retry (3)"]


def test_an_unfinished_step_is_an_error() -> None:
    steps = [{"index": 1, "name": "hung", "status": "running", "duration_s": None}]
    cases = list(next(iter(parsed(junit_xml(detail(status="abandoned", steps=steps))))))
    assert isinstance(cases[0].result[0], Error)
    assert cases[0].result[0].message == "the step never finished (status running)"
    assert steps_needing_output(detail(steps=steps)) == [1]
    assert steps_needing_output(detail()) == [2]


def test_a_legacy_run_with_odd_values_still_exports() -> None:
    run = {"id": "x", "status": "completed", "steps": [{"index": 1, "name": None, "status": "completed",
                                                        "duration_s": "soon", "metadata": "not json"}],
           "started_at": "yesterday", "duration_s": None}
    report = parsed(junit_xml(run))
    suite = next(iter(report))
    assert suite.name == "stepflow run" and [c.name for c in suite] == ["step 1"]
    assert next(iter(suite)).time == 0.0
    assert parsed(junit_xml({})).tests == 0


@given(st.text())
def test_any_text_makes_valid_xml(text: str) -> None:
    steps = [{"index": 1, "name": text, "status": "failed", "duration_s": 1.0, "error_message": text,
              "metadata": {"tests": [{"name": text or "t", "status": "failed", "message": text, "details": text}]}}]
    xml = junit_xml(detail(name=text, command=text, host=text, steps=steps), outputs={1: text})
    report = parsed(xml)
    case = next(iter(next(iter(report))))
    safe = xml_safe(text)
    assert case.name == (safe if text else "step 1")  # attributes keep every character, CR and LF too
    assert case.result[0].message == (safe if text else "the step failed")
    # element text: an XML parser reads CR LF and a lone CR as LF
    assert case.system_out == (safe.replace("\r\n", "\n").replace("\r", "\n") if text else None)


@pytest.mark.parametrize(("raw", "safe"), [("a\x00b", "a\ufffdb"), ("\x1b[1mbold\x1b[0m", "bold"), ("\ud800", "\ufffd"),
                                           ("tab\tnl\ncr\r", "tab\tnl\ncr\r"), ("\uffff", "\ufffd"), ("😀", "😀")])
def test_xml_safe(raw: str, safe: str) -> None:
    assert xml_safe(raw) == safe


def test_a_real_run_exports(stepflow: StepflowRunner) -> None:
    script = ("print('STEP_START:build'); print('compiling'); print('STEP_START:test'); "
              "print('1 test failed'); print('STEP_ERROR:tests failed'); print('STEP_START:deploy'); raise SystemExit(3)")
    done = stepflow("run", "--", *py(script))
    assert done.returncode == 3, done.stderr
    shown = stepflow("show", "last", "--json")
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)
    assert steps_needing_output(run) == [run["steps"][1]["index"], run["steps"][2]["index"]]
    report = parsed(junit_xml(run, outputs={run["steps"][1]["index"]: "1 test failed"}))
    cases = list(next(iter(report)))
    assert [c.name for c in cases] == ["build", "test", "deploy"]
    assert cases[0].is_passed
    assert cases[1].result[0].message == "tests failed" and cases[1].system_out == "1 test failed"
    assert isinstance(cases[2].result[0], Failure)  # running when the command exited 3: failed

"""A run as JUnit XML, the test report every CI reads: steps as test cases.

In the layout the Ant/Jenkins schema describes and GitHub, GitLab, Buildkite, TeamCity and
Jenkins parse: one <testsuite> for the run's steps (a failed step a <failure> with its error
message and its output tail in <system-out>, a skipped step <skipped/>, a step that never
ended an <error>), and one more <testsuite> per step that reported test results (TeamCity's
testStarted/testFailed/testFinished, kept in the step's metadata["tests"]) with those tests as
their own cases. A run that failed without a failed step (a non-zero exit, a timeout) gets a
`(run)` case that fails, so the report fails too.

Text from the run is made valid XML 1.0: escape sequences are removed and the characters XML
cannot hold are replaced by U+FFFD. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

_ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78])")
_INVALID_RE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TEXT_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ATTR_ESCAPES = {**_TEXT_ESCAPES, '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_UNFINISHED = ("running", "pending")
_RUN_FAILED = ("failed", "timed_out", "cancelled", "abandoned")


def xml_safe(text: str) -> str:
    """`text` without escape sequences and with what XML 1.0 cannot hold as U+FFFD."""
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    return _INVALID_RE.sub("\ufffd", text)


def _text(value: object) -> str:
    return "".join(_TEXT_ESCAPES.get(c, c) for c in xml_safe(str(value)))


def _attr(value: object) -> str:
    return "".join(_ATTR_ESCAPES.get(c, c) for c in xml_safe(str(value)))


def _attrs(pairs: Iterable[tuple[str, object]]) -> str:
    return "".join(f' {key}="{_attr(value)}"' for key, value in pairs if value is not None)


def _seconds(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else "0.000"


def _timestamp(value: object) -> str | None:
    """An ISO time as the schema wants it: UTC, no offset, whole seconds."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat()


def steps_needing_output(run: Mapping[str, Any]) -> list[int]:
    """The indexes of the steps whose output tail the report shows (the failed and unfinished
    ones): what the caller reads from the log before calling `junit_xml`."""
    return [s["index"] for s in _steps(run) if s.get("status") == "failed" or s.get("status") in _UNFINISHED]


def _steps(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    steps = run.get("steps")
    return [s for s in steps if isinstance(s, Mapping)] if isinstance(steps, list) else []


def _tests(step: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    metadata = step.get("metadata")
    tests = metadata.get("tests") if isinstance(metadata, Mapping) else None
    return [t for t in tests if isinstance(t, Mapping) and t.get("name")] if isinstance(tests, list) else []


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0.0


class _Case:
    def __init__(self, name: str, classname: str, time: object) -> None:
        self.name, self.classname, self.time = name, classname, time
        self.result: str | None = None  # "failure", "error" or "skipped"
        self.message: str | None = None
        self.body: str | None = None
        self.output: str | None = None

    def xml(self) -> list[str]:
        attrs = _attrs([("name", self.name), ("classname", self.classname), ("time", _seconds(self.time))])
        inner: list[str] = []
        if self.result == "skipped":
            inner.append(f"      <skipped{_attrs([('message', self.message)])}/>")
        elif self.result is not None:
            message = self.message or self.result
            kind = "StepFailed" if self.result == "failure" else "StepUnfinished"
            body = _text(self.body if self.body is not None else message)
            inner.append(f"      <{self.result}{_attrs([('message', message), ('type', kind)])}>{body}</{self.result}>")
        if self.output:
            inner.append(f"      <system-out>{_text(self.output)}</system-out>")
        return [f"    <testcase{attrs}/>"] if not inner else [f"    <testcase{attrs}>", *inner, "    </testcase>"]


class _Suite:
    def __init__(self, name: str, *, attrs: list[tuple[str, object]] | None = None,
                 properties: list[tuple[str, object]] | None = None) -> None:
        self.name, self.attrs, self.properties = name, attrs or [], properties or []
        self.cases: list[_Case] = []
        self.time: object = None  # the cases' sum unless set

    def counts(self) -> list[tuple[str, int]]:
        cases = self.cases
        return [("tests", len(cases)), ("failures", sum(c.result == "failure" for c in cases)),
                ("errors", sum(c.result == "error" for c in cases)),
                ("skipped", sum(c.result == "skipped" for c in cases))]

    def seconds(self) -> float:
        return _number(self.time) if self.time is not None else sum(_number(c.time) for c in self.cases)

    def xml(self) -> list[str]:
        attrs = _attrs([("name", self.name), *self.counts(), ("time", _seconds(self.seconds())), *self.attrs])
        lines = [f"  <testsuite{attrs}>"]
        shown = [(k, v) for k, v in self.properties if v is not None]
        if shown:
            lines.append("    <properties>")
            lines += [f"      <property{_attrs([('name', k), ('value', v)])}/>" for k, v in shown]
            lines.append("    </properties>")
        for case in self.cases:
            lines += case.xml()
        lines.append("  </testsuite>")
        return lines


def junit_xml(run: Mapping[str, Any], *, outputs: Mapping[int, str] | None = None) -> str:
    """The JUnit XML report of `run` (a dict as `stepflow show --json` prints it).

    Each step is a case named as the step (a repeated name gets ` (2)`, ` (3)`), its class the
    run's name. `outputs` maps a step's `index` (as in the JSON) to the tail of its output (see
    steps_needing_output), shown in the case's <system-out>."""
    outputs = outputs or {}
    run_name = str(run.get("name") or run.get("command") or "stepflow run")
    status = run.get("status")
    main = _Suite(run_name, attrs=[("id", 0), ("hostname", run.get("host") or "localhost"),
                                   ("timestamp", _timestamp(run.get("started_at")))],
                  properties=[("stepflow.run_id", run.get("id")), ("stepflow.command", run.get("command")),
                              ("stepflow.status", status), ("stepflow.exit_code", run.get("exit_code"))])
    main.time = run.get("duration_s")
    suites = [main]
    seen: dict[str, int] = {}
    for position, step in enumerate(_steps(run)):
        index = step.get("index")
        step_name = str(step.get("name") or f"step {position + 1}")
        seen[step_name] = seen.get(step_name, 0) + 1
        # CI report views merge cases of one name: a repeated step (a retry) is told apart
        case_name = step_name if seen[step_name] == 1 else f"{step_name} ({seen[step_name]})"
        case = _Case(case_name, run_name, step.get("duration_s"))
        step_status = step.get("status")
        if step_status == "failed":
            case.result, case.message = "failure", step.get("error_message") or "the step failed"
        elif step_status == "skipped":
            case.result = "skipped"
        elif step_status in _UNFINISHED:
            case.result, case.message = "error", f"the step never finished (status {step_status})"
        if isinstance(index, int) and outputs.get(index):
            case.output = outputs[index]
        main.cases.append(case)
        tests = _tests(step)
        if tests:
            suite = _Suite(f"{run_name} / {case_name}", properties=[("stepflow.step_index", index)])
            suite.cases = [_test_case(test, f"{run_name}.{case_name}") for test in tests]
            suites.append(suite)
    if status in _RUN_FAILED and not any(c.result in ("failure", "error") for c in main.cases):
        run_case = _Case("(run)", run_name, None)
        run_case.result = "failure"
        detail = f": {run['error_message']}" if run.get("error_message") else ""
        run_case.message = f"the run {status}, exit status {run.get('exit_code')}{detail}"
        main.cases.append(run_case)
    per_suite = [dict(suite.counts()) for suite in suites]
    totals = [(key, sum(counts[key] for counts in per_suite)) for key in ("tests", "failures", "errors", "skipped")]
    head = f"<testsuites{_attrs([('name', run_name), *totals, ('time', _seconds(main.seconds()))])}>"
    body = [line for suite in suites for line in suite.xml()]
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', head, *body, "</testsuites>", ""])


def _test_case(test: Mapping[str, Any], classname: str) -> _Case:
    case = _Case(str(test.get("name")), classname, test.get("duration_s"))
    status = test.get("status")
    if status == "failed":
        case.result, case.message = "failure", test.get("message") or "the test failed"
        case.body = "\n".join(str(p) for p in (test.get("message"), test.get("details")) if p)
    elif status == "ignored":
        case.result, case.message = "skipped", test.get("message")
    return case

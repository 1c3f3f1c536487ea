"""TeamCity service messages as step markers.

    ##teamcity[blockOpened name='Deploy' description='..']   a nested step starts
    ##teamcity[blockClosed name='Deploy']                    it ends, with every step inside it
    ##teamcity[buildProblem description='..' identity='..']  the running step failed (stays open)
    ##teamcity[message text='..' status='ERROR']             the same (FAILURE too); WARNING: a notice
    ##teamcity[testStarted name='t'] .. [testFailed name='t' message='..' details='..']
      .. [testFinished name='t' duration='12']               one test result (testIgnored: ignored)
    ##teamcity[publishArtifacts 'dist/*.whl => wheels']      artifacts (rules split by newline or comma)
    ##teamcity[progressMessage '..']                         a progress notice (progressStart too)
    ##teamcity[disableServiceMessages] .. [enableServiceMessages]   nothing read in between

Both forms are read: one unnamed value (`##teamcity[name 'value']`) or named attributes. In
values `|' |n |r |x |l |p |[ |] || |0xNNNN` stand for the quote, LF, CR, NEL, LS, PS, brackets,
the bar and a code point. Messages may follow other text and share a line, as TeamCity reads
them. A test's result is assembled across its lines (by flowId and name), so the dialect keeps
the tests in flight; a message TeamCity knows but stepflow has no marker for stays in the log.
"""

from __future__ import annotations

from typing import ClassVar

from stepflow.dialects.base import Artifact, BadMarker, Marker, Notice, StepEnd, StepError, StepStart, TestResult
from stepflow.dialects.text import clean_name
from stepflow.record import record

PREFIX = "##teamcity["
_ESCAPES = {"'": "'", "n": "\n", "r": "\r", "x": "\u0085", "l": "\u2028", "p": "\u2029", "[": "[", "]": "]", "|": "|"}
_HEX = frozenset("0123456789abcdefABCDEF")
_NAME_END = frozenset(" \t]'")


@record(frozen=True)
class Message:
    """One service message: its name, its single unnamed value or its named attributes."""

    name: str
    value: str | None
    attributes: dict[str, str]


def unescape(text: str) -> str:
    """A value with its `|` escapes decoded (the whole text, no closing quote expected)."""
    decoded = _read_value(text + "'", 0)
    return decoded[0] if decoded is not None else text


def parse_message(text: str, position: int) -> tuple[Message, int] | None:
    """The message whose name starts at `position` (just after `##teamcity[`) and where it
    ends, or None when it is malformed (an unclosed quote or bracket, no name)."""
    end = position
    while end < len(text) and text[end] not in _NAME_END:
        end += 1
    name = text[position:end]
    if not name:
        return None
    position = _skip_spaces(text, end)
    value: str | None = None
    attributes: dict[str, str] = {}
    if text.startswith("'", position):
        read = _read_value(text, position + 1)
        if read is None:
            return None
        value, position = read
        position = _skip_spaces(text, position)
    else:
        while position < len(text) and text[position] != "]":
            equals = text.find("=", position)
            if equals == -1 or not text.startswith("'", equals + 1):
                return None
            key = text[position:equals].strip()
            read = _read_value(text, equals + 2)
            if read is None or not key:
                return None
            attributes[key], position = read
            position = _skip_spaces(text, position)
    if not text.startswith("]", position):
        return None
    return Message(name, value, attributes), position + 1


def _skip_spaces(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t":
        position += 1
    return position


def _read_value(text: str, position: int) -> tuple[str, int] | None:
    """The value starting at `position` (after its opening quote), decoded, and the offset
    after its closing quote; None when the quote is never closed."""
    parts: list[str] = []
    while True:
        quote = text.find("'", position)
        if quote == -1:
            return None
        bar = text.find("|", position, quote)
        if bar == -1:
            parts.append(text[position:quote])
            return "".join(parts), quote + 1
        parts.append(text[position:bar])
        following = text[bar + 1 : bar + 2]
        digits = text[bar + 3 : bar + 7]
        if following == "0" and text[bar + 2 : bar + 3] == "x" and len(digits) == 4 and set(digits) <= _HEX:
            code = int(digits, 16)
            parts.append("\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code))  # no lone surrogates
            position = bar + 7
        elif following in _ESCAPES:
            parts.append(_ESCAPES[following])
            position = bar + 2
        else:
            parts.append("|")  # not an escape: the bar is kept as text
            position = bar + 1


@record
class _Test:
    status: str = "passed"
    message: str | None = None
    details: str | None = None


class TeamcityDialect:
    """Reads TeamCity service messages; keeps the tests in flight and the disabled switch."""

    name: ClassVar[str] = "teamcity"
    needles: ClassVar[tuple[bytes, ...]] = (b"##teamcity[",)

    def __init__(self) -> None:
        self._disabled = False
        self._tests: dict[tuple[str, str], _Test] = {}

    def parse(self, line: str) -> list[Marker]:
        markers: list[Marker] = []
        start = line.find(PREFIX)
        while start != -1:
            parsed = parse_message(line, start + len(PREFIX))
            if parsed is None:
                markers.append(BadMarker("teamcity", "a service message is not closed, or has no name"))
                break
            message, end = parsed
            markers.extend(self.handle(message))
            start = line.find(PREFIX, end)
        return markers

    def handle(self, message: Message) -> list[Marker]:
        """The markers one parsed message stands for (it may only change the dialect's state)."""
        kind, attributes = message.name, message.attributes
        if self._disabled:
            if kind == "enableServiceMessages":
                self._disabled = False
            return []
        if kind == "disableServiceMessages":
            self._disabled = True
            return []
        if kind == "blockOpened":
            name = clean_name(attributes.get("name", message.value or ""))
            if not name:
                return [BadMarker("blockOpened", "block has no name")]
            params: dict[str, object] = {}
            if attributes.get("description"):
                params["description"] = attributes["description"]
            return [StepStart(name, params, nested=True)]
        if kind == "blockClosed":
            name = clean_name(attributes.get("name", message.value or ""))
            return [StepEnd(name or None)]
        if kind == "buildProblem":
            description = attributes.get("description", message.value or "")
            if not description:
                return [BadMarker("buildProblem", "build problem has no description")]
            metadata: dict[str, object] = {"identity": attributes["identity"]} if "identity" in attributes else {}
            return [StepError(description, ends=False, metadata=metadata)]
        if kind == "message":
            return _message(attributes)
        if kind in ("progressMessage", "progressStart"):
            text = message.value if message.value is not None else attributes.get("message", "")
            return [Notice("progress", text)] if text else []
        if kind == "publishArtifacts":
            return _artifacts(message.value if message.value is not None else attributes.get("path", ""))
        if kind.startswith("test"):
            return self._test(kind, attributes)
        return []

    def _test(self, kind: str, attributes: dict[str, str]) -> list[Marker]:
        name = clean_name(attributes.get("name", ""))
        if not name or kind not in ("testStarted", "testFailed", "testIgnored", "testFinished"):
            return []  # suites, testStdOut, testCount: nothing stepflow keeps
        key = (attributes.get("flowId", ""), name)
        if kind == "testStarted":
            self._tests[key] = _Test()
            return []
        test = self._tests.get(key)
        if kind == "testFinished":
            test = self._tests.pop(key, None) or _Test()
            duration = attributes.get("duration", "")
            seconds = int(duration) / 1000 if duration.isascii() and duration.isdigit() and len(duration) < 16 else None
            return [TestResult(name, test.status, seconds, test.message, test.details)]
        status = "failed" if kind == "testFailed" else "ignored"
        if test is None:  # reported without testStarted: a result of its own
            message, details = attributes.get("message") or None, attributes.get("details") or None
            return [TestResult(name, status, None, message, details)]
        if test.status != "failed":  # a test ignored and failed stays failed
            test.status = status
        test.message = attributes.get("message") or test.message
        test.details = attributes.get("details") or test.details
        return []


def _message(attributes: dict[str, str]) -> list[Marker]:
    text = attributes.get("text", "")
    status = attributes.get("status", "NORMAL").upper()
    metadata: dict[str, object] = {"status": status}
    if attributes.get("errorDetails"):
        metadata["errorDetails"] = attributes["errorDetails"]
    if status in ("ERROR", "FAILURE"):
        return [StepError(text, ends=False, metadata=metadata)]
    if status == "WARNING":
        return [Notice("warning", text, metadata)]
    return []  # a NORMAL message is output: the line stays in the log


def _artifacts(rules: str) -> list[Marker]:
    found: list[Marker] = []
    for rule in rules.replace(",", "\n").splitlines():
        source, arrow, target = rule.partition("=>")
        if source.strip():
            found.append(Artifact(source.strip(), f"=> {target.strip()}" if arrow and target.strip() else None))
    return found

"""GitHub Actions workflow commands as step markers.

    ::group::Build            a flat step starts (the open one completes first)
    ::endgroup::              the running step ends
    ::error file=a.py,line=3,col=4,title=T::message
                              the running step failed (it stays open until its end);
                              file/line/col/endLine/endColumn/title kept as metadata
    ::warning ...::m  ::notice ...::m  ::debug::m
                              annotations that do not change a step's status
    ::add-mask::value         the masker hides `value` from here on
    ::stop-commands::TOKEN    nothing is parsed until a line `::TOKEN::`

As the Actions runner reads them: the line is trimmed and must open with `::`; command names
are case-insensitive; an unknown command is ordinary output. In the message `%25 %0D %0A`
stand for `% CR LF`; property values also decode `%3A %2C` (`: ,`).
"""

from __future__ import annotations

from typing import ClassVar

from stepflow.dialects.base import AddMask, BadMarker, Marker, Notice, StepEnd, StepError, StepStart
from stepflow.dialects.text import clean_name

_NOTICE_LEVELS = frozenset({"warning", "notice", "debug"})
_INTEGER_PROPERTIES = frozenset({"line", "col", "endline", "endcolumn"})


def unescape_data(text: str) -> str:
    """A command's message as meant: `%0D %0A %25` decoded (the runner's order, `%25` last)."""
    if "%" not in text:
        return text
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(text: str) -> str:
    """A property value as meant: the data escapes plus `%3A %2C`."""
    if "%" not in text:
        return text
    return (
        text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")
    )


def parse_properties(text: str) -> dict[str, object]:
    """`file=a.py,line=3` as a dict; line/col/endLine/endColumn as integers when they are."""
    properties: dict[str, object] = {}
    for pair in text.split(","):
        key, equals, value = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            continue  # the runner skips what is not key=value
        decoded = unescape_property(value)
        if key.lower() in _INTEGER_PROPERTIES and decoded.isascii() and decoded.isdigit():
            properties[key] = int(decoded)
        else:
            properties[key] = decoded
    return properties


class GithubDialect:
    """Reads GitHub Actions workflow commands; stateful only for `::stop-commands::`."""

    name: ClassVar[str] = "github"
    needles: ClassVar[tuple[bytes, ...]] = (b"::",)

    def __init__(self) -> None:
        self._stop_token: str | None = None  # lowercased: the runner compares it ignoring case

    def parse(self, line: str) -> list[Marker]:
        text = line.strip()
        if not text.startswith("::"):
            return []
        end = text.find("::", 2)
        if end == -1:
            return []
        info, data = text[2:end], text[end + 2 :]
        if self._stop_token is not None:
            if not data and info.lower() == self._stop_token:
                self._stop_token = None
            return []
        command, _, properties = info.partition(" ")
        command = command.lower()
        if command == "group":
            name = clean_name(unescape_data(data))
            return [StepStart(name)] if name else [BadMarker("group", "group has no name")]
        if command == "endgroup":
            return [StepEnd()]
        if command == "error":
            return [StepError(unescape_data(data), ends=False, metadata=parse_properties(properties))]
        if command in _NOTICE_LEVELS:
            return [Notice(command, unescape_data(data), parse_properties(properties))]
        if command == "add-mask":
            value = unescape_data(data)
            return [AddMask(value)] if value else [BadMarker("add-mask", "add-mask has no value")]
        if command == "stop-commands":
            if not data:
                return [BadMarker("stop-commands", "stop-commands needs a token, as ::stop-commands::TOKEN")]
            self._stop_token = data.lower()
        return []

"""GitLab CI collapsible sections as nested steps.

    \\e[0Ksection_start:1700000000:build[collapsed=true]\\r\\e[0KBuilding the app
    \\e[0Ksection_end:1700000042:build\\r\\e[0K

A section is a step named by its header (the text after `\\r\\e[0K`; the section name when
there is none) that opens inside the innermost open one; its UNIX times give the durations.
`section_end:TS:NAME` ends the innermost open section called NAME and every section opened
inside it. The leading `\\e[0K` is optional; several markers may share a line, split by `\\r`
(the runner itself prints `section_end:..\\r\\e[0K\\e[0Ksection_start:..`). Section names are
`[A-Za-z0-9_.-]+`, as GitLab reads them; `[collapsed=true]` and the other options are kept as
the step's parameters, the section name under `section`.
"""

from __future__ import annotations

from typing import ClassVar

from stepflow.dialects.base import BadMarker, Marker, StepEnd, StepStart
from stepflow.dialects.text import clean_name, lstrip_ansi

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_START = "section_start:"
_END = "section_end:"


def parse_options(text: str) -> dict[str, object]:
    """`collapsed=true,hide_duration=false` as a dict, true/false as booleans."""
    options: dict[str, object] = {}
    for pair in text.split(","):
        key, _, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if key:
            lowered = value.lower()
            options[key] = True if lowered == "true" else False if lowered == "false" else value
    return options


class GitlabDialect:
    """Reads GitLab section markers; keeps the open sections to name the step each end ends."""

    name: ClassVar[str] = "gitlab"
    needles: ClassVar[tuple[bytes, ...]] = (b"section_",)

    def __init__(self) -> None:
        self._open: list[tuple[str, str]] = []  # (section name, step name), outermost first

    def parse(self, line: str) -> list[Marker]:
        if "section_" not in line:
            return []
        markers: list[Marker] = []
        segments = line.split("\r")
        index = 0
        while index < len(segments):
            segment = lstrip_ansi(segments[index])
            index += 1
            if segment.startswith(_START):
                header = ""
                if index < len(segments) and not lstrip_ansi(segments[index]).startswith(("section_start:", _END)):
                    header = clean_name(segments[index])
                    index += 1
                markers.append(self._start(segment[len(_START) :], header))
            elif segment.startswith(_END):
                markers.append(self._end(segment[len(_END) :]))
        return markers

    def _start(self, rest: str, header: str) -> Marker:
        parsed = _split(rest)
        if isinstance(parsed, BadMarker):
            return BadMarker("section_start", parsed.reason)
        at, section, after = parsed
        params: dict[str, object] = {}
        if after.startswith("["):
            close = after.find("]")
            if close != -1:
                params.update(parse_options(after[1:close]))
        params["section"] = section
        name = header or section
        self._open.append((section, name))
        return StepStart(name, params, nested=True, at=at)

    def _end(self, rest: str) -> Marker:
        parsed = _split(rest)
        if isinstance(parsed, BadMarker):
            return BadMarker("section_end", parsed.reason)
        at, section, _ = parsed
        for position in range(len(self._open) - 1, -1, -1):
            if self._open[position][0] == section:
                name = self._open[position][1]
                del self._open[position:]
                return StepEnd(name, at=at)
        return StepEnd(section, at=at)  # not opened here: the recorder ends it if it is open


def _split(rest: str) -> tuple[float, str, str] | BadMarker:
    """`1700000000:name[opts]...` as (time, name, what follows the name), or why it is not."""
    stamp, colon, tail = rest.partition(":")
    if not colon or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 16:
        return BadMarker("section", "a section marker needs a UNIX time, as section_start:1700000000:name")
    end = 0
    while end < len(tail) and tail[end] in _NAME_CHARS:
        end += 1
    if end == 0:
        return BadMarker("section", "a section needs a name of letters, digits, '_', '.' or '-'")
    return float(int(stamp)), tail[:end], tail[end:]

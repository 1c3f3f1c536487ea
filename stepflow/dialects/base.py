"""What a marker dialect is: a parser that turns output lines into step markers.

A dialect is the language a script uses to announce its steps: stepflow's own `STEP_START:`
lines, GitHub Actions' `::group::`, GitLab's `section_start:`, Buildkite's `--- `, TeamCity's
`##teamcity[...]`. Each is a class with a `name`, the lowercase byte strings a line must hold
to be worth parsing (`needles`: the cheap pre-filter on the per-line hot path; a line holding
none of them is never decoded), and `parse`. One dialect object serves one run, so a dialect
with state (`::stop-commands::`, `disableServiceMessages`) keeps it on `self`.

Pure: no I/O, no clock, and `parse` never raises, whatever the line holds.
The markers below are the whole vocabulary the recorder understands; a dialect translates
its own language into them and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol


@dataclass(frozen=True, slots=True)
class StepStart:
    """A step begins. Flat (`nested=False`): the open steps are completed first, as
    `STEP_START` does. Nested: it opens inside the innermost open step (GitLab sections,
    TeamCity blocks). `at` is the time the marker itself gives (GitLab's UNIX_TS), if any."""

    name: str
    params: dict[str, object] = field(default_factory=dict)
    nested: bool = False
    at: float | None = None


@dataclass(frozen=True, slots=True)
class StepComplete:
    """`STEP_COMPLETE:<name>`: the running step called `name` succeeded (another name: a warning)."""

    name: str


@dataclass(frozen=True, slots=True)
class StepEnd:
    """End a step without naming it (`::endgroup::`), or the open step called `name` together
    with every step opened inside it (`section_end:..:NAME`, `blockClosed`). A step already
    marked failed ends failed; otherwise it completes. Nothing open to end: ignored."""

    name: str | None = None
    at: float | None = None


@dataclass(frozen=True, slots=True)
class StepError:
    """The innermost running step failed with `message` (no step running: an error on the run).

    `ends=True` ends the step at once (`STEP_ERROR`); `ends=False` marks it failed and leaves it
    open until its own end (`::error::` inside a group). `metadata` keeps what the dialect
    said beside the message (file, line, col, title)."""

    message: str
    ends: bool = True
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file the run produced, as the script named it (maybe relative to its folder)."""

    path: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Meta:
    """A key/value pair for the running step, or for the run when no step runs."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class AddMask:
    """`::add-mask::<value>`. The masker (stepflow.run.secrets) has already learnt the value
    before the line reached a dialect; the marker only keeps the line out of the log."""

    value: str


@dataclass(frozen=True, slots=True)
class Notice:
    """An annotation that does not change a step's status: `level` is debug, notice, warning
    or progress (`::warning::`, TeamCity `message status='WARNING'`, `progressMessage`)."""

    level: str
    message: str
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TestResult:
    """One test's result inside the running step (TeamCity `testStarted`/`testFailed`/
    `testFinished`); `status` is passed, failed or ignored."""

    __test__ = False  # not a pytest test class

    name: str
    status: str
    duration_s: float | None = None
    message: str | None = None
    details: str | None = None


@dataclass(frozen=True, slots=True)
class BadMarker:
    """A marker whose content cannot be used; `reason` is a short sentence for users."""

    keyword: str
    reason: str


Marker = StepStart | StepComplete | StepEnd | StepError | Artifact | Meta | AddMask | Notice | TestResult | BadMarker


class Dialect(Protocol):
    """One marker language. Instances are made per run: `Dialect()` takes no arguments."""

    name: ClassVar[str]
    needles: ClassVar[tuple[bytes, ...]]  # lowercase; a line with none of them holds no marker
    # Optional, not part of the protocol: `gate: ClassVar[bytes]`, bytes every marker line holds
    # as written (stepflow's b":"), so a chunk without it is skipped unlowered (see gate_of).

    def parse(self, line: str) -> list[Marker]:
        """The markers `line` (one line, no newline, decoded with errors="replace") carries.

        Empty when the line is ordinary output, which then stays in the log; a marker line
        is kept out of the log. Never raises."""
        ...


def candidate_spans(region: bytes, needles: tuple[bytes, ...], gates: tuple[bytes, ...] = ()) -> list[tuple[int, int]]:
    """Sorted (start, end) offsets of the lines of `region` that hold one of `needles`.

    The pre-filter on the per-chunk hot path: one `lower()` of the chunk and a `find` loop per
    needle, never a regex. `region` holds whole lines split by b"\\n"; `end` excludes the
    newline. `gates` (see `gate_of`): a chunk holding none of them has no candidate, found by
    memchr without lowering the chunk. Pure.
    """
    if gates and not any(gate in region for gate in gates):
        return []
    lowered = region.lower()
    spans: list[tuple[int, int]] = []
    for needle in needles:
        found = lowered.find(needle)
        while found != -1:
            start = lowered.rfind(b"\n", 0, found) + 1
            end = lowered.find(b"\n", found)
            if end == -1:
                end = len(lowered)
            spans.append((start, end))
            found = lowered.find(needle, end)
    if len(spans) > 1:
        spans = sorted(set(spans))
    return spans


def gate_of(dialect: object) -> bytes | None:
    """Bytes every marker line of `dialect` holds as written (not lowercased): its optional
    class attribute `gate` (stepflow's keywords all end with b":"), else a non-letter byte all
    its needles share; None when there is none (no chunk can then be skipped unlowered)."""
    gate: bytes | None = getattr(dialect, "gate", None)
    if gate:
        return gate
    needles: tuple[bytes, ...] = getattr(dialect, "needles", ())
    if not needles:
        return None
    shared = {b for b in set(needles[0]).intersection(*needles[1:]) if not chr(b).isalpha()}
    if not shared:
        return None
    return b":" if ord(":") in shared else bytes([min(shared)])

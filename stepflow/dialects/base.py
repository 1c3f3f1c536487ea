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

from collections.abc import Iterable

from stepflow.record import field, record
from stepflow.typenames import Protocol

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import ClassVar


@record(frozen=True)
class StepStart:
    """A step begins. Flat (`nested=False`): the open steps are completed first, as
    `STEP_START` does. Nested: it opens inside the innermost open step (GitLab sections,
    TeamCity blocks). `at` is the time the marker itself gives (GitLab's UNIX_TS), if any."""

    name: str
    params: dict[str, object] = field(default_factory=dict)
    nested: bool = False
    at: float | None = None


@record(frozen=True)
class StepComplete:
    """`STEP_COMPLETE:<name>`: the running step called `name` succeeded (another name: a warning)."""

    name: str


@record(frozen=True)
class StepEnd:
    """End a step without naming it (`::endgroup::`), or the open step called `name` together
    with every step opened inside it (`section_end:..:NAME`, `blockClosed`). A step already
    marked failed ends failed; otherwise it completes. Nothing open to end: ignored."""

    name: str | None = None
    at: float | None = None


@record(frozen=True)
class StepError:
    """The innermost running step failed with `message` (no step running: an error on the run).

    `ends=True` ends the step at once (`STEP_ERROR`); `ends=False` marks it failed and leaves it
    open until its own end (`::error::` inside a group). `metadata` keeps what the dialect
    said beside the message (file, line, col, title)."""

    message: str
    ends: bool = True
    metadata: dict[str, object] = field(default_factory=dict)


@record(frozen=True)
class Artifact:
    """A file the run produced, as the script named it (maybe relative to its folder)."""

    path: str
    description: str | None = None


@record(frozen=True)
class Meta:
    """A key/value pair for the running step, or for the run when no step runs."""

    key: str
    value: str


@record(frozen=True)
class AddMask:
    """`::add-mask::<value>`. The masker (stepflow.run.secrets) has already learnt the value
    before the line reached a dialect; the marker only keeps the line out of the log."""

    value: str


@record(frozen=True)
class Notice:
    """An annotation that does not change a step's status: `level` is debug, notice, warning
    or progress (`::warning::`, TeamCity `message status='WARNING'`, `progressMessage`)."""

    level: str
    message: str
    metadata: dict[str, object] = field(default_factory=dict)


@record(frozen=True)
class TestResult:
    """One test's result inside the running step (TeamCity `testStarted`/`testFailed`/
    `testFinished`); `status` is passed, failed or ignored."""

    __test__ = False  # not a pytest test class

    name: str
    status: str
    duration_s: float | None = None
    message: str | None = None
    details: str | None = None


@record(frozen=True)
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


_LETTERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Non-letters by how often ordinary output holds them, most often first; any other is rarer.
_COMMON = b" 0123456789.:-/=,_()'\"[]"


def _guard(needle: bytes) -> bytes:
    """The needle's rarest non-letter byte (b"" when it is all letters): a chunk without it
    holds no line with the needle, and `bytes.__contains__` of one byte is a memchr, while a
    search for a short needle of common bytes costs as much as lowering the chunk."""
    others = [bytes([b]) for b in needle if b not in _LETTERS]
    if not others:
        return b""
    return max(others, key=lambda b: _COMMON.find(b) if b in _COMMON else len(_COMMON))


class Prefilter:
    """The cheap per-chunk test on the hot path: which lines of a chunk may hold a marker of the
    dialects a run reads (the union of their `needles`, lowercase bytes). A line holding none
    is never decoded. Needles without ASCII letters (`::`, `--- `) are searched in the bytes as
    they are, the others in the chunk lowered once; a needle is searched only when the chunk
    holds its rarest non-letter byte (`#` for `##teamcity[`, `_` for `step_`). `gates`: bytes
    of which every marker line holds one as written (see `gate_of`); a chunk with none has no
    candidate, found by memchr without lowering it. Pure; never raises.
    """

    def __init__(self, needles: Iterable[bytes], *, gates: Iterable[bytes] = ()) -> None:
        self.gates: tuple[bytes, ...] = tuple(gates)
        unique = sorted({n.lower() for n in needles if n})
        # A needle holding a shorter one finds no line the shorter does not: one scan fewer.
        kept = [n for n in unique if not any(o != n and o in n for o in unique)]
        self.needles: tuple[bytes, ...] = tuple(kept)
        self._raw = tuple((n, _guard(n)) for n in kept if not _LETTERS.intersection(n))
        self._folded = tuple((n, _guard(n)) for n in kept if _LETTERS.intersection(n))

    def spans(self, region: bytes) -> list[tuple[int, int]]:
        """Sorted (start, end) offsets of the lines in `region` (whole lines split by b"\\n",
        `end` excludes the newline) that hold a needle; a superset of the marker lines."""
        if self.gates and not any(gate in region for gate in self.gates):
            return []
        spans: list[tuple[int, int]] = []
        for needle, guard in self._raw:
            if guard in region:
                _collect(region, needle, spans)
        folded = [needle for needle, guard in self._folded if guard in region]
        if folded:
            lowered = region.lower()
            for needle in folded:
                _collect(lowered, needle, spans)
        if len(spans) > 1:
            spans = sorted(set(spans))
        return spans


def _collect(region: bytes, needle: bytes, spans: list[tuple[int, int]]) -> None:
    found = region.find(needle)
    while found != -1:
        start = region.rfind(b"\n", 0, found) + 1
        end = region.find(b"\n", found)
        if end == -1:
            end = len(region)
        spans.append((start, end))
        found = region.find(needle, end)


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

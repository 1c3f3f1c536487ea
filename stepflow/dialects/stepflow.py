"""The built-in `stepflow` dialect: stepflow's own marker lines turned into markers.

A wrapped script announces its steps by printing marker lines (README, "Markers")::

    STEP_START:deploy [env=prod] [stop_on_error=true]
    STEP_COMPLETE:deploy
    STEP_ERROR:<message>
    ARTIFACT:<path>[:<description>]
    META:<key>:<value>

`NEEDLES` feed the cheap pre-filter run over every chunk of output (base.Prefilter);
`parse_line` then decides, for each candidate line, which marker (if any) it carries. Both are
pure: no I/O, no clock, and neither raises for any input. `::add-mask::` is not this
dialect's: stepflow.run.secrets owns it, whatever dialects a run reads.
"""

from __future__ import annotations

from stepflow.dialects.base import (
    Artifact,
    BadMarker,
    Marker,
    Meta,
    Prefilter,
    StepComplete,
    StepError,
    StepStart,
)

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    import re
    from typing import ClassVar

_KEYWORDS = ("STEP_START", "STEP_COMPLETE", "STEP_ERROR", "ARTIFACT", "META")
# bytes.lower() folds ASCII only, so candidate_spans finds exactly what the regexes below can
# match: the keywords are matched with ASCII-only case folding ("ſ" must not pass for "s").
# "step_" stands for the three STEP_ keywords: one scan of the chunk instead of three.
NEEDLES = (b"step_", b"artifact:", b"meta:")
_KEYWORD = "(?ai:(?P<kw>" + "|".join(_KEYWORDS) + ")):"

# CSI (colours, erase line), OSC (titles, hyperlinks) ended by BEL or ST, charset designation
# (`tput sgr0` prints ESC ( B) and the keypad/cursor-save escapes progress bars use.
_ANSI = r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78])"
# One pair and its comma; a quoted value may hold commas, and a comma must lead to another pair.
_PAIR_TAIL = r"""(?P<value>"[^"]*"\s*|'[^']*'\s*|[^,]*)(?:,(?!\s*\Z)|\Z)"""


class _Patterns:
    """The dialect's regexes, compiled when the first candidate line is parsed: `re` costs ~3 ms
    to import, and a run whose output holds no marker never needs it (start-up, issue 17)."""

    def __getattr__(self, name: str) -> re.Pattern[str]:  # the first use only: then they are attributes
        import re

        self.ANSI = re.compile(_ANSI)
        self.AT_START = re.compile(rf"(?:[\s\ufeff]|{_ANSI})*{_KEYWORD}")
        # Matching escape sequences as whole tokens keeps a keyword inside an OSC title from counting.
        self.SCAN = re.compile(rf"{_ANSI}|{_KEYWORD}")
        # Tab is turned into a space first; every other C0/C1 control and DEL could steer a terminal.
        self.CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
        self.BRACKET_PAIR = re.compile(r"(?P<key>[^=,]*)=" + _PAIR_TAIL)
        self.BRACE_PAIR = re.compile(r"(?P<key>[^:,]*):" + _PAIR_TAIL)
        self.DASH_PARAM = re.compile(r"--(?P<key>[^\s=]+)=(?P<value>\S*)")
        self.INT = re.compile(r"-?[0-9]+")
        self.FLOAT = re.compile(r"-?[0-9]+\.[0-9]+")
        return object.__getattribute__(self, name)  # type: ignore[no-any-return]


_RX = _Patterns()


class StepflowDialect:
    """stepflow's own markers (`STEP_START:` ...). `anywhere`: `--markers anywhere`, a keyword
    may follow other text on the line (`+ echo STEP_START:x` in a `set -x` trace)."""

    name: ClassVar[str] = "stepflow"
    needles: ClassVar[tuple[bytes, ...]] = NEEDLES
    gate: ClassVar[bytes] = b":"  # every keyword ends with a colon: memchr beats lowering the chunk

    def __init__(self, *, anywhere: bool = False) -> None:
        self.anywhere = anywhere

    def parse(self, line: str) -> list[Marker]:
        marker = parse_line(line, anywhere=self.anywhere)
        return [] if marker is None else [marker]


def parse_line(line: str, *, anywhere: bool = False) -> Marker | None:
    """Return the event `line` announces, or None when it is not a marker.

    By default the keyword must open the line (after white space and ANSI escapes); with
    `anywhere` it may follow other text, provided it is not glued to a preceding word.
    """
    match = _RX.AT_START.match(line)
    after_text = False
    if match is None and anywhere:
        match = _find_anywhere(line)
        after_text = match is not None
        if after_text and not _is_prefix(line[: match.start()]):  # type: ignore[union-attr]
            return None
    if match is None:
        return None
    payload = line[match.end() :]
    if "\x1b" in payload:
        payload = _RX.ANSI.sub("", payload)
    payload = _RX.CONTROL.sub("\ufffd", payload.rstrip().replace("\t", " "))
    if after_text:
        payload = _until_shell_operator(payload)

    keyword = match.group("kw").upper()
    if keyword == "STEP_START" or keyword == "STEP_COMPLETE":
        name, params = _split_params(payload)
        if not name:
            return BadMarker(keyword, "step has no name")
        return StepStart(name, params) if keyword == "STEP_START" else StepComplete(name)
    if keyword == "STEP_ERROR":
        return StepError(payload.strip())
    if keyword == "ARTIFACT":
        path, _, description = payload.partition(":")
        if not path.strip():
            return BadMarker(keyword, "artifact has no path")
        return Artifact(path.strip(), description.strip() or None)
    key, colon, value = payload.partition(":")
    if not colon:
        return BadMarker(keyword, "meta needs a key and a value, as META:<key>:<value>")
    if not key.strip():
        return BadMarker(keyword, "meta has no key")
    return Meta(key.strip(), value.strip())


_PREFILTER = Prefilter(NEEDLES, gates=(b":",))


def candidate_spans(region: bytes, *, anywhere: bool = False) -> list[tuple[int, int]]:
    """The lines of `region` that may hold one of this dialect's markers (see
    base.Prefilter). `anywhere` is accepted for symmetry with parse_line: both modes
    share the same candidates."""
    return _PREFILTER.spans(region)


def _find_anywhere(line: str) -> re.Match[str] | None:
    """Return the first keyword match in `line` that is not glued to a preceding word."""
    escape_end = -1
    for match in _RX.SCAN.finditer(line):
        if match.group("kw") is None:
            escape_end = match.end()
            continue
        start = match.start()
        # An escape sequence right before the keyword separates it like white space would.
        if start == 0 or start == escape_end or not _is_word_char(line[start - 1]):
            return match
    return None


# Words that echo a command rather than its output: a `set -x` trace (`+ echo STEP_START:x`),
# a Dockerfile line (`Step 3/5 : RUN echo STEP_START:x`, `#5 [2/4] RUN echo ...`). The command's
# output carries the same marker on a line of its own: taking both would count it twice.
_COMMAND_WORDS = frozenset({"echo", "printf", "run", "print", "cmd", "/bin/echo", "exec"})
_OPERATORS = (" && ", " || ", "; ", " | ", " > ", " >> ", " 2>")


def _is_prefix(text: str) -> bool:
    """Whether the text before a keyword is a log prefix (`#5 0.12`, `[build]`, a timestamp,
    `INFO`, `web_1 |`), not prose (`grep found: STEP_START:x in f`) nor an echoed command."""
    if "\x1b" in text:
        text = _RX.ANSI.sub(" ", text)
    tokens = text.split()
    if not tokens:
        return True
    if any(t.lower().strip("'\"") in _COMMAND_WORDS for t in tokens):
        return False
    if "|" in tokens:  # docker compose, `make -j` wrappers: `service_name | ...`
        tokens = tokens[tokens.index("|") + 1 :]
    return all(_is_label(t) for t in tokens)


def _is_label(token: str) -> bool:
    if any(c.isdigit() for c in token) or not any(c.isalpha() for c in token):
        return True
    if token[0] in "[(<#" or token[-1] in "])>":
        return True
    word = token.rstrip(":")
    return word.isupper()  # INFO, WARN, CI: a level or a tag, not a sentence


def _until_shell_operator(payload: str) -> str:
    """`deps && pip install` -> `deps`: after other text, a marker ends at a shell operator."""
    end = len(payload)
    for operator in _OPERATORS:
        found = payload.find(operator)
        if found != -1:
            end = min(end, found)
    return payload[:end].rstrip().rstrip("'\"")


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _split_params(payload: str) -> tuple[str, dict[str, object]]:
    """Split a STEP_START payload into its name and the parameter groups trailing it.

    Groups are read from the end backwards; the first one that is not all key/value pairs
    belongs to the name and ends the scan. When a key repeats, the rightmost value wins.
    """
    groups: list[dict[str, object]] = []
    end = len(payload)
    while True:
        while end > 0 and payload[end - 1].isspace():
            end -= 1
        group, start = _group_before(payload, end)
        if group is None:
            break
        groups.append(group)
        end = start
    params: dict[str, object] = {}
    for group in reversed(groups):
        params.update(group)
    return payload[:end].strip(), params


def _group_before(text: str, end: int) -> tuple[dict[str, object] | None, int]:
    """Parse the parameter group ending at `end`; return it (or None) and where it starts."""
    if end == 0:
        return None, end
    last = text[end - 1]
    if last == "]" or last == "}":
        start = text.rfind("[" if last == "]" else "{", 0, end - 1)
        if start == -1:
            return None, end
        pattern = _RX.BRACKET_PAIR if last == "]" else _RX.BRACE_PAIR
        return _pairs(text[start + 1 : end - 1], pattern), start
    # Indexing instead of slicing keeps a line with many groups linear in its length.
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    match = _RX.DASH_PARAM.fullmatch(text, start, end)
    if match is None:
        return None, end
    return {match.group("key"): _value(match.group("value"))}, start


def _pairs(content: str, pattern: re.Pattern[str]) -> dict[str, object] | None:
    """Parse `a=1,b=2` (or `a:1, b:2`); None unless the whole content is such pairs."""
    pairs: dict[str, object] = {}
    position = 0
    while True:
        match = pattern.match(content, position)
        if match is None:
            return None
        key = _unquote(match.group("key").strip())
        if not key:
            return None
        pairs[key] = _value(match.group("value"))
        position = match.end()
        if position == len(content):
            return pairs


def _value(raw: str) -> object:
    """Type a parameter value: booleans, integers and decimals; quoted text stays text."""
    text = raw.strip()
    if _is_quoted(text):
        return text[1:-1]
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if _RX.INT.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # longer than sys.get_int_max_str_digits(): keep the text
            return text
    if _RX.FLOAT.fullmatch(text):
        return float(text)
    return text


def _unquote(text: str) -> str:
    return text[1:-1] if _is_quoted(text) else text


def _is_quoted(text: str) -> bool:
    return len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""

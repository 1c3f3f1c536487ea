"""Hide secret values in a run's output before anything is stored or shown. Pure.

Values come from `--mask VALUE`, from environment variables whose names match
STEPFLOW_MASK_ENV patterns, and from `::add-mask::VALUE` lines the command prints. This module
is the only one that knows `::add-mask::`: `Masker.filter` learns and masks each chunk once,
as it is read, before it goes both to the view and to the line splitter (and so the store);
`AddMaskCommand` only keeps those lines out of the log, whatever dialects the run reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from stepflow.dialects.base import AddMask, Marker

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import ClassVar

MASK = b"***"
MIN_LENGTH = 3  # shorter values would blank out ordinary text ("1", "on")
ADD_MASK = "::add-mask::"
_ADD_MASK = ADD_MASK.encode()


class AddMaskCommand:
    """The `::add-mask::VALUE` line as a dialect (stepflow.dialects.base.Dialect) that the line
    splitter always reads first: the value was learnt by `Masker.filter`, the line stays out of
    the log. Its needle is lowercase as every dialect's, so `::ADD-MASK::` is a candidate too
    and `parse` (case-sensitive, as GitHub's runner) decides."""

    name: ClassVar[str] = "add-mask"
    needles: ClassVar[tuple[bytes, ...]] = (_ADD_MASK,)

    def parse(self, line: str) -> list[Marker]:
        stripped = line.lstrip()
        if stripped.startswith(ADD_MASK):
            return [AddMask(stripped[len(ADD_MASK) :].rstrip())]
        return []


def matching(env: Mapping[str, str], patterns: Iterable[str]) -> dict[str, str]:
    """The variables whose names match one of `patterns` (fnmatch, case-insensitive)."""
    tests = [_matcher(p.upper()) for p in patterns if p]
    return {k: v for k, v in env.items() if any(test(k.upper()) for test in tests)} if tests else {}


def glob_match(name: str, pattern: str) -> bool:
    """fnmatch.fnmatchcase, without compiling a regex for the usual `*`-only patterns."""
    return _matcher(pattern)(name)


def _matcher(pattern: str) -> Callable[[str], bool]:
    """A test of names against `pattern`, made once per pattern: every `stepflow run` checks
    each variable against each pattern, and fnmatch's regexes cost `re` at start-up."""
    if "?" in pattern or "[" in pattern:
        import fnmatch

        return lambda name: fnmatch.fnmatchcase(name, pattern)
    if "*" not in pattern:
        return pattern.__eq__
    first, *middle, last = pattern.split("*")
    if not middle and not first:
        return lambda name: name.endswith(last)  # *_KEY
    if len(middle) == 1 and not first and not last:
        part = middle[0]
        return lambda name: part in name  # *TOKEN*
    least = len(first) + len(last)

    def test(name: str) -> bool:
        if len(name) < least or not name.startswith(first) or not name.endswith(last):
            return False
        pos, end = len(first), len(name) - len(last)
        for piece in middle:
            found = name.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    return test


class Masker:
    """Replaces every known secret with `***`; learns new ones from `::add-mask::` lines."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: list[bytes] = []
        self._held: dict[int, bytes] = {}
        for value in values:
            self.add(value)

    def __bool__(self) -> bool:
        return bool(self._values)

    def add(self, value: str) -> None:
        raw = value.strip().encode("utf-8", "surrogateescape")
        if len(raw) >= MIN_LENGTH and raw not in self._values and raw != MASK:
            self._values.append(raw)
            self._values.sort(key=len, reverse=True)  # longest first: a secret inside another

    def mask(self, data: bytes) -> bytes:
        for value in self._values:
            if value in data:
                data = data.replace(value, MASK)
        return data

    def mask_text(self, text: str) -> str:
        if not self._values:
            return text
        return self.mask(text.encode("utf-8", "surrogateescape")).decode("utf-8", "replace")

    def learn(self, data: bytes) -> None:
        """Add the value of every complete `::add-mask::` line in `data`."""
        start = data.find(_ADD_MASK)
        while start != -1:
            line_start = data.rfind(b"\n", 0, start) + 1
            end = data.find(b"\n", start)
            if end == -1:
                return  # not complete yet: the line splitter will see it whole
            if not data[line_start:start].strip():
                self.add(data[start + len(_ADD_MASK) : end].decode("utf-8", "surrogateescape"))
            start = data.find(_ADD_MASK, end)

    def filter(self, stream: int, data: bytes) -> bytes:
        """Mask a chunk on its way to the terminal, holding back bytes that may start a secret.

        A secret split across two reads is still caught: the end of a chunk that could be the
        beginning of a secret, or an unfinished `::add-mask::` line, waits for the next chunk.
        """
        data = self._held.pop(stream, b"") + data
        if _ADD_MASK in data:
            self.learn(data)
            last_line = data.rfind(b"\n") + 1
            if _ADD_MASK in data[last_line:]:
                self._held[stream] = data[last_line:]
                data = data[:last_line]
        if not self._values:
            return data
        data = self.mask(data)
        keep = self.partial_secret(data)
        if keep:
            self._held[stream] = data[-keep:] + self._held.get(stream, b"")
            data = data[:-keep]
        return data

    def flush(self, stream: int) -> bytes:
        """What `filter` still holds for `stream` (at the end of the output)."""
        return self.mask(self._held.pop(stream, b""))

    def partial_secret(self, data: bytes) -> int:
        """Length of the longest end of `data` that is a proper prefix of a secret."""
        best = 0
        for value in self._values:
            for size in range(min(len(value) - 1, len(data)), best, -1):
                if data.endswith(value[:size]):
                    best = size
                    break
        return best

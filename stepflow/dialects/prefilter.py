"""The cheap per-chunk test for the dialects a run reads: which lines may hold a marker.

The union of the dialects' `needles`, found in a chunk of whole lines as
`stepflow.markers.candidate_spans` finds stepflow's own: a line holding none of them is never
decoded. Needles without ASCII letters (`::`, `--- `) are searched in the bytes as they are;
the others in the chunk lowered once, and only when the chunk holds the needle's longest run
of non-letters (`##` for `##teamcity[`): `bytes.__contains__` is a memchr-speed scan, lowering
a chunk is a copy. Pure; never raises.
"""

from __future__ import annotations

from collections.abc import Iterable

_LETTERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _guard(needle: bytes) -> bytes:
    """The longest run of non-letters in `needle` (b"" when it is all letters)."""
    best = b""
    run = bytearray()
    for byte in needle + b"a":
        if byte in _LETTERS:
            if len(run) > len(best):
                best = bytes(run)
            run.clear()
        else:
            run.append(byte)
    return best


class Prefilter:
    """Finds the candidate lines for a set of needles (lowercase bytes, as dialects give them)."""

    def __init__(self, needles: Iterable[bytes]) -> None:
        unique = sorted({n.lower() for n in needles if n})
        # A needle holding a shorter one finds no line the shorter does not: one scan fewer.
        kept = [n for n in unique if not any(o != n and o in n for o in unique)]
        self.needles: tuple[bytes, ...] = tuple(kept)
        self._raw = tuple(n for n in kept if not _LETTERS.intersection(n))
        self._folded = tuple((n, _guard(n)) for n in kept if _LETTERS.intersection(n))

    def spans(self, region: bytes) -> list[tuple[int, int]]:
        """Sorted (start, end) offsets of the lines in `region` (whole lines split by b"\\n",
        `end` excludes the newline) that hold a needle; a superset of the marker lines."""
        spans: list[tuple[int, int]] = []
        for needle in self._raw:
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

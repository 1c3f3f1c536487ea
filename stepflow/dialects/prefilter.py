"""The cheap per-chunk test for the dialects a run reads: which lines may hold a marker.

The union of the dialects' `needles`, found in a chunk of whole lines as
`stepflow.markers.candidate_spans` finds stepflow's own: a line holding none of them is never
decoded. Needles without ASCII letters (`::`, `--- `) are searched in the bytes as they are;
the others in the chunk lowered once. A needle is searched only when the chunk holds its
rarest non-letter byte (`#` for `##teamcity[`, `_` for `step_`). Pure; never raises.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    """Finds the candidate lines for a set of needles (lowercase bytes, as dialects give them)."""

    def __init__(self, needles: Iterable[bytes]) -> None:
        unique = sorted({n.lower() for n in needles if n})
        # A needle holding a shorter one finds no line the shorter does not: one scan fewer.
        kept = [n for n in unique if not any(o != n and o in n for o in unique)]
        self.needles: tuple[bytes, ...] = tuple(kept)
        self._raw = tuple((n, _guard(n)) for n in kept if not _LETTERS.intersection(n))
        self._folded = tuple((n, _guard(n)) for n in kept if _LETTERS.intersection(n))

    def spans(self, region: bytes) -> list[tuple[int, int]]:
        """Sorted (start, end) offsets of the lines in `region` (whole lines split by b"\\n",
        `end` excludes the newline) that hold a needle; a superset of the marker lines."""
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

"""What the dialect tests share: a fuzz strategy built from each language's own pieces."""

from __future__ import annotations

from hypothesis import strategies as st

from stepflow.dialects.base import Marker, Prefilter

# Text as a dialect receives it: decoded with errors="replace", so never a lone surrogate.
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)


def fuzz_lines(pieces: list[str]) -> st.SearchStrategy[list[str]]:
    """Runs of lines glued from a dialect's keywords, escapes and arbitrary text."""
    line = st.lists(st.one_of(st.sampled_from(pieces), _TEXT), max_size=14).map("".join)
    return st.lists(line, min_size=1, max_size=8)


def parse_all(dialect: object, lines: list[str]) -> list[Marker]:
    """Feed `lines` to one dialect object in order, as a run does; also check the pre-filter
    would have picked every line that carried a marker."""
    prefilter = Prefilter(dialect.needles)  # type: ignore[attr-defined]
    markers: list[Marker] = []
    for line in lines:
        found = dialect.parse(line)  # type: ignore[attr-defined]
        assert isinstance(found, list)
        if found:
            assert prefilter.spans(line.encode()), f"a marker line the pre-filter misses: {line!r}"
        markers.extend(found)
    return markers

"""LineSplitter: chunks in, line blocks and markers out, in order. Pure, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepflow.dialects import stepflow as markers
from stepflow.run.lines import LineSplitter


class Sink:
    def __init__(self) -> None:
        self.items: list[tuple[str, int, object, int]] = []

    def lines(self, stream: int, data: bytes, count: int, cut: int) -> None:
        assert count == data.count(b"\n") + 1
        self.items.append(("lines", stream, data, cut))

    def marker(self, stream: int, event: markers.Marker) -> None:
        self.items.append(("marker", stream, event, 0))

    def flat(self) -> list[object]:
        """Lines one by one and markers, whatever blocks the reads made."""
        out: list[object] = []
        for kind, _, data, _ in self.items:
            out.extend(data.split(b"\n") if kind == "lines" else [data])  # type: ignore[union-attr]
        return out

    def all_lines(self) -> list[bytes]:
        return [line for kind, _, data, _ in self.items if kind == "lines" for line in data.split(b"\n")]  # type: ignore[union-attr]


def split(chunks: list[bytes], *, max_line: int = 1 << 20, stream: int = 1, **kw: object) -> Sink:
    sink = Sink()
    splitter = LineSplitter(sink, max_line=max_line, **kw)  # type: ignore[arg-type]
    for chunk in chunks:
        splitter.feed(stream, chunk)
    splitter.close()
    return sink


def test_lines_across_chunks_keep_order_and_content() -> None:
    sink = split([b"alpha\nbe", b"ta\ngam", b"ma\n"])
    assert sink.all_lines() == [b"alpha", b"beta", b"gamma"]


def test_marker_splits_the_block_in_its_place() -> None:
    sink = split([b"a\nb\nSTEP_START:build\nc\n"])
    assert sink.items == [
        ("lines", 1, b"a\nb", 0),
        ("marker", 1, markers.StepStart("build", {}), 0),
        ("lines", 1, b"c", 0),
    ]


def test_marker_first_and_last_line_without_newline() -> None:
    sink = split([b"STEP_START:a\nx\nSTEP_COMPLETE:a"])
    assert [i[0] for i in sink.items] == ["marker", "lines", "marker"]


def test_empty_lines_are_lines() -> None:
    assert split([b"\n\nx\n"]).all_lines() == [b"", b"", b"x"]


def test_last_line_without_newline_is_kept() -> None:
    assert split([b"one\ntwo"]).all_lines() == [b"one", b"two"]


def test_stderr_is_not_searched_unless_asked() -> None:
    assert split([b"STEP_START:x\n"], stream=2).items == [("lines", 2, b"STEP_START:x", 0)]
    sink = split([b"STEP_START:x\n"], stream=2, marker_streams=frozenset({1, 2}))
    assert sink.items[0][0] == "marker"


def test_long_line_is_capped_and_counted() -> None:
    chunks = [b"x" * 1000] * 10 + [b"\nafter\n"]
    sink = split(chunks, max_line=4096)
    assert sink.items[0] == ("lines", 1, b"x" * 4096, 10000 - 4096)
    assert sink.all_lines()[-1] == b"after"


def test_long_line_inside_one_chunk_is_capped() -> None:
    sink = split([b"short\n" + b"y" * 5000 + b"\nend\n"], max_line=1024)
    cuts = [(data, cut) for kind, _, data, cut in sink.items if kind == "lines" and cut]
    assert cuts == [(b"y" * 1024, 5000 - 1024)]
    assert sink.all_lines() == [b"short", b"y" * 1024, b"end"]


def test_invalid_utf8_and_nul_bytes_are_kept_as_bytes() -> None:
    data = b"\xff\xfe bad \x00 nul\n\xc3\x28\n"
    assert split([data]).all_lines() == [b"\xff\xfe bad \x00 nul", b"\xc3\x28"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_chunking_does_not_change_the_lines(size: int) -> None:
    text = b"a\nSTEP_START:s[duration=1]\nb\r\n\n\xff\nMETA:k:v\nlast"
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    assert split(chunks).flat() == split([text]).flat()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(min_value=256, max_value=600))
def test_any_byte_stream_is_split_without_loss(chunks: list[bytes], max_line: int) -> None:
    """Every non-marker line comes out once, in order, capped at max_line."""
    sink = split(chunks, max_line=max_line)
    joined = b"".join(chunks)
    expected = joined.split(b"\n")
    if joined.endswith(b"\n") or not joined:
        expected.pop()
    kept = [
        line[:max_line] for line in expected
        if markers.parse_line(line[:max_line].decode("utf-8", "replace")) is None
    ]
    assert sink.all_lines() == kept

"""Output as the dashboard shows it: SGR colours become classes, nothing becomes markup."""

from __future__ import annotations

import html
import re

from hypothesis import given
from hypothesis import strategies as st

from stepflow.serve.ansi import segments, to_html

SPAN = re.compile(r'<span class="[a-z0-9 -]*">|</span>')


def test_sgr_colours_and_weights_become_classes() -> None:
    assert segments("\x1b[1;31mred\x1b[0m plain \x1b[92mbright\x1b[39m") == [
        ("b fg-1", "red"), ("", " plain "), ("fg-10", "bright")]
    assert segments("\x1b[38;5;196mx\x1b[48;2;1;2;3my") == [("", "x"), ("", "y")]
    assert segments(b"\x1b[44mbg\x1b[49m") == [("bg-4", "bg")]


def test_other_escapes_are_dropped_and_controls_shown() -> None:
    assert segments("a\x1b[2Kb\x1b]0;title\x07c\x1b[") == [("", "a"), ("", "b"), ("", "c")]
    assert segments("bell\x07") == [("", "bell\\x07")]


def test_markup_in_output_is_text() -> None:
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    out = to_html("\x1b[31m" + hostile)
    assert "<script" not in out and "<img" not in out
    assert html.unescape(SPAN.sub("", out)) == hostile


@given(st.text(alphabet=st.sampled_from(list("<>&\"'ab\x1b[];m0123456789\x07\n\t/")), max_size=80))
def test_no_text_ever_becomes_a_tag(text: str) -> None:
    out = to_html(text)
    assert "<" not in SPAN.sub("", out) and ">" not in SPAN.sub("", out)


@given(st.binary(max_size=200))
def test_any_bytes_render(data: bytes) -> None:
    for classes, _ in segments(data):
        assert re.fullmatch(r"[a-z0-9 -]*", classes)

"""ANSI colour (SGR) in recorded output as styled segments, and those as inert HTML. Pure.

Only SGR colours and weights become styles, each a CSS class (the pages' Content-Security-Policy
allows no inline style). Every other escape sequence is dropped, other control characters are
shown as \\xNN (fmt.safe_text), and all text is HTML-escaped: output can never become markup.
"""

from __future__ import annotations

import html

from stepflow.fmt import safe_text

Segment = tuple[str, str]  # (space-separated CSS classes, text)

_ATTRS = {1: "b", 2: "dim", 3: "i", 4: "u", 9: "s"}
_ATTRS_OFF = {22: ("b", "dim"), 23: ("i",), 24: ("u",), 29: ("s",)}
_FINAL = range(0x40, 0x7F)


def segments(data: bytes | str) -> list[Segment]:
    """Split a line into runs of text with the classes its SGR sequences set (fg-N, bg-N, b, dim, i, u, s)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if "\x1b" not in text:
        return [("", safe_text(text))] if text else []
    out: list[Segment] = []
    fg = bg = ""
    attrs: set[str] = set()
    pos = 0
    while pos < len(text):
        esc = text.find("\x1b", pos)
        chunk = text[pos:] if esc < 0 else text[pos:esc]
        if chunk:
            classes = " ".join(sorted(attrs | ({fg} if fg else set()) | ({bg} if bg else set())))
            out.append((classes, safe_text(chunk)))
        if esc < 0:
            break
        pos, params, final = _sequence(text, esc)
        if final == "m":
            fg, bg = _apply(params, fg, bg, attrs)
    return out


def _sequence(text: str, esc: int) -> tuple[int, str, str]:
    """The escape sequence at `esc`: (position after it, CSI parameters, final character or '')."""
    if esc + 1 >= len(text):
        return esc + 1, "", ""
    kind = text[esc + 1]
    if kind == "[":
        end = esc + 2
        while end < len(text) and ord(text[end]) not in _FINAL:
            end += 1
        if end >= len(text):
            return end, "", ""
        return end + 1, text[esc + 2:end], text[end]
    if kind == "]":  # OSC: to BEL or ST
        bel, st = text.find("\x07", esc), text.find("\x1b\\", esc + 2)
        ends = [e for e in (bel + 1 if bel >= 0 else -1, st + 2 if st >= 0 else -1) if e > 0]
        return (min(ends) if ends else len(text)), "", ""
    return esc + 2, "", ""


def _apply(params: str, fg: str, bg: str, attrs: set[str]) -> tuple[str, str]:
    codes = [int(p) if p.isascii() and p.isdigit() else -1 for p in (params.split(";") if params else ["0"])]
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == 0:
            fg = bg = ""
            attrs.clear()
        elif code in _ATTRS:
            attrs.add(_ATTRS[code])
        elif code in _ATTRS_OFF:
            attrs.difference_update(_ATTRS_OFF[code])
        elif 30 <= code <= 37 or 90 <= code <= 97:
            fg = f"fg-{code - 30 if code < 90 else code - 82}"
        elif 40 <= code <= 47 or 100 <= code <= 107:
            bg = f"bg-{code - 40 if code < 100 else code - 92}"
        elif code == 39:
            fg = ""
        elif code == 49:
            bg = ""
        elif code in (38, 48):  # 256-colour and true colour: skip their arguments
            mode = codes[i + 1] if i + 1 < len(codes) else -1
            i += 2 if mode == 5 else 4 if mode == 2 else 1
        i += 1
    return fg, bg


def to_html(data: bytes | str) -> str:
    """A line as HTML: escaped text, in spans carrying the SGR classes."""
    parts = []
    for classes, text in segments(data):
        escaped = html.escape(text, quote=True)
        parts.append(f'<span class="{classes}">{escaped}</span>' if classes else escaped)
    return "".join(parts)

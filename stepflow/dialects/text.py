"""Small text helpers the dialects share: escape sequences out of names, controls made visible.

Used only on lines the pre-filter has already picked, so a regex here is off the hot path.
"""

from __future__ import annotations

import re

# CSI (colours, erase line), OSC (titles, hyperlinks) ended by BEL or ST, charset designation
# and the keypad/cursor-save escapes progress bars use.
ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78])")
# Tab becomes a space first; every other C0/C1 control and DEL could steer a terminal.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def strip_ansi(text: str) -> str:
    """`text` without terminal escape sequences."""
    return ANSI_RE.sub("", text) if "\x1b" in text else text


def clean_name(text: str) -> str:
    """A step name fit to show and store: no escapes, no controls, no outer white space."""
    text = strip_ansi(text).replace("\t", " ").strip()  # a trailing CR is white space, not a control
    return _CONTROL_RE.sub("\ufffd", text).strip()


def lstrip_ansi(text: str) -> str:
    """`text` without the white space and escape sequences that open it."""
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\ufeff":
            position += 1
        if position < len(text) and text[position] == "\x1b":
            match = ANSI_RE.match(text, position)
            if match is not None:
                position = match.end()
                continue
        return text[position:]

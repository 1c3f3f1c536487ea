"""JSON text for the values a run stores, without importing `json` at a run's start-up.

`json` brings `re` (~3 ms here, issue 17), and the only JSON a run writes is a few small
values: its tags, metadata, environment names and warnings. `dumps` gives exactly the text
of `json.dumps(value, ensure_ascii=False)` for dicts, lists, tuples, str, int, float, bool
and None (tests/test_fmt_startup.py holds it to that); anything else goes to `json` itself.
Readers use `json.loads`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_ESCAPES.update({chr(i): f"\\u{i:04x}" for i in range(0x20) if chr(i) not in _ESCAPES})
_TABLE = str.maketrans(_ESCAPES)


def dumps(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=False)`, character for character."""
    try:
        return "".join(_parts(value))
    except _Other:
        import json

        return json.dumps(value, ensure_ascii=False)


class _Other(Exception):
    """A value this module does not write itself."""


def _string(text: str) -> str:
    return '"' + text.translate(_TABLE) + '"'


def _parts(value: Any) -> list[str]:
    out: list[str] = []
    _add(value, out)
    return out


def _add(value: Any, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif kind is bool:
        out.append("true" if value else "false")
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise _Other
        out.append(float.__repr__(value))
    elif kind is list or kind is tuple:
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(", ")
            _add(item, out)
        out.append("]")
    elif kind is dict:
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if type(key) is not str:
                raise _Other  # json's own rules for int, float, bool and None keys
            if i:
                out.append(", ")
            out.append(_string(key))
            out.append(": ")
            _add(item, out)
        out.append("}")
    else:
        raise _Other

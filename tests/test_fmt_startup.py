"""The start-up path's own formatters give exactly the standard library's text (issue 17).

`fmt.iso` and `fmt.shell_join` stand in for datetime and shlex so a run need not import them
before its command starts; what they write is stored, so it must not drift by a character.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from stepflow.fmt import iso, shell_join


@given(st.floats(min_value=0, max_value=2**33, allow_nan=False) | st.integers(0, 2**33).map(float)
       | st.integers(0, 2**33).map(lambda s: s + 0.9999995))
def test_iso_is_datetime_isoformat(ts: float) -> None:
    assert iso(ts) == datetime.fromtimestamp(ts, UTC).isoformat()


@given(st.lists(st.text()))
def test_shell_join_is_shlex_join(argv: list[str]) -> None:
    assert shell_join(argv) == shlex.join(argv)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
    | st.lists(inner, max_size=3).map(tuple),
    max_leaves=12,
)


@given(JSON_VALUES)
def test_jsontext_is_json_dumps(value: object) -> None:
    import json

    from stepflow import jsontext

    assert jsontext.dumps(value) == json.dumps(value, ensure_ascii=False)


def test_jsontext_leaves_other_keys_and_values_to_json() -> None:
    import json

    from stepflow import jsontext

    odd = {1: float("nan"), None: [float("inf")], "ok": "\x00\u2028é"}
    assert jsontext.dumps(odd) == json.dumps(odd, ensure_ascii=False)

"""One duration parser for every option: a table of what a user types -> seconds. No I/O."""

from __future__ import annotations

import pytest

from stepflow.errors import UsageError
from stepflow.timeparse import parse_duration, since_timestamp


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("1h30m", 5400.0), ("2d", 172800.0),
    ("1.5h", 5400.0), ("0.25", 0.25), (" 2D 4H ", 187200.0), ("1w", 604800.0), ("30m1h", 5400.0),
])
def test_parse_duration_accepts_every_documented_form(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", " ", "h", "1x", "1.2.3s", "10 days", "-5", "1e400", "nan", "inf", "5m3"])
def test_parse_duration_refuses_the_rest_naming_the_option(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text, option="--timeout")
    assert str(caught.value) == f"--timeout {text!r} is not a duration (90, 90s, 10m, 1h30m, 2d)"


def test_since_takes_compound_durations_and_dates() -> None:
    assert since_timestamp("1h30m", now=10_000.0) == 10_000.0 - 5400.0
    assert since_timestamp("2025-08-01T00:00:00+00:00") == 1754006400.0
    with pytest.raises(UsageError, match="before 1970"):
        since_timestamp("100d", now=1000.0)

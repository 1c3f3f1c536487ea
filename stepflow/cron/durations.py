"""Durations as users type them (`90`, `90s`, `10m`, `1h30m`, `2d`, `1.5s`) in seconds. Pure."""

from __future__ import annotations

from stepflow.errors import UsageError

UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str, *, option: str = "duration", minimum: float = 0.0) -> float:
    """Seconds in `text`: a bare number is seconds; units w d h m s ms may be chained (`1h30m`).

    Raises:
        UsageError: not a duration, or less than `minimum`; the message names `option`.
    """
    raw = text.strip().lower()
    problem = UsageError(f"{option} {text!r} is not a duration (e.g. 90, 90s, 10m, 1h30m, 2d)")
    if not raw or not raw.isascii():
        raise problem
    total, number, i, seen_unit = 0.0, "", 0, False
    while i < len(raw):
        ch = raw[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if raw.startswith("ms", i) else ch
        if unit not in UNIT_SECONDS or not _is_number(number):
            raise problem
        total += float(number) * UNIT_SECONDS[unit]
        number, seen_unit = "", True
        i += len(unit)
    if number:
        if not _is_number(number) or seen_unit:  # `1h30` is ambiguous: minutes or seconds?
            raise problem
        total += float(number)
    if total < minimum:
        raise UsageError(f"{option} {text!r} is less than {minimum:g} seconds")
    return total


def _is_number(text: str) -> bool:
    return bool(text) and text.count(".") <= 1 and text != "."

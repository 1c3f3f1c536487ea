"""Durations and dates a user types (`90`, `10m`, `1h30m`, `2d`, `2025-08-01`). Pure.

One parser for every duration stepflow takes (`--timeout`, `--since`, `--older-than`, and
the coming `--retry-delay`), so a form accepted by one option is accepted by all. Written
without `re`: `--timeout` is read on `stepflow run`'s start-up path.
"""

from __future__ import annotations

import math
import time

from stepflow.errors import UsageError

UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
FORMS = "90, 90s, 10m, 1h30m, 2d"


def parse_duration(text: str, *, option: str = "duration") -> float:
    """Seconds in `text`: a number (seconds), or numbers each with a unit (s m h d w), largest
    first or in any order: `90`, `1.5h`, `1h30m`, `2d 4h`. Case and inner spaces do not matter.

    Raises:
        UsageError: `text` is not such a duration, or it is not finite; the message names `option`.
    """
    problem = UsageError(f"{option} {text!r} is not a duration ({FORMS})")
    body = text.strip().lower().replace(" ", "")
    if not body:
        raise problem
    if not body.strip("0123456789."):
        body += "s"  # a bare number is seconds (but `5m3` is a typo, not 5m3s)
    total, number = 0.0, ""
    for char in body:
        if char.isdigit() or char == ".":
            number += char
        elif char in UNIT_SECONDS and number:
            try:
                total += float(number) * UNIT_SECONDS[char]
            except ValueError:
                raise problem from None
            number = ""
        else:
            raise problem
    if number or not math.isfinite(total):
        raise problem
    return total


def since_timestamp(text: str | None, *, now: float | None = None, option: str = "--since") -> float | None:
    """A duration ago (`2h`, `3d`, `1h30m`), or an ISO date/time (local when it has no offset).

    Raises:
        UsageError: `text` is neither; the message names `option`.
    """
    if text is None:
        return None
    now = time.time() if now is None else now
    try:
        ago = parse_duration(text, option=option)
    except UsageError:
        pass
    else:
        if ago > now:  # before 1970: a typo, and too far back for the clock to say
            raise UsageError(f"{option} {text!r} reaches back before 1970")
        return now - ago
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text.strip())
        return (value if value.tzinfo else value.astimezone()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise UsageError(f"{option} {text!r} is not a duration ({FORMS}) or a date (2025-08-01)") from None

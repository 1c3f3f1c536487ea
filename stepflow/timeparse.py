"""Durations and dates a user types (`2h`, `3d`, `2025-08-01`) as epoch seconds. Pure."""

from __future__ import annotations

import re
import time
from datetime import datetime

from stepflow.errors import UsageError

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def since_timestamp(text: str | None, *, now: float | None = None, option: str = "--since") -> float | None:
    """`2h`, `3d`, `45m`, `1w` ago, or an ISO date/time (local when it has no offset).

    Raises:
        UsageError: `text` is neither; the message names `option`.
    """
    if text is None:
        return None
    now = time.time() if now is None else now
    problem = UsageError(f"{option} {text!r} is not a duration (2h, 3d) or a date (2025-08-01)")
    match = _SINCE.match(text)
    if match:
        ago = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        if ago > now:  # before 1970: a typo, and too far back for the clock to say
            raise UsageError(f"{option} {text!r} reaches back before 1970")
        return now - ago
    try:
        value = datetime.fromisoformat(text.strip())
        return (value if value.tzinfo else value.astimezone()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise problem from None

"""Small text formatters shared by the views and the history commands. Pure."""

from __future__ import annotations

import math
import time

# shlex.quote's safe characters (it costs `re` to import: start-up, issue 17)
_SHELL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


def duration(seconds: float | None) -> str:
    """1.2s, 3m04s, 2h05m; '-' when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def size(n: int | float | None) -> str:
    """12 B, 1.2 KiB, 34.5 MiB: binary units, as the size settings take them; '-' when unknown.

    The one size formatter: the views, the report printers and upkeep messages share it.
    """
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def iso(ts: float) -> str:
    """An ISO 8601 time in UTC with its offset, as stored for new rows and printed in JSON.

    The text of `datetime.fromtimestamp(ts, UTC).isoformat()` (microseconds rounded half to
    even, left out when zero), without importing datetime on every run's start-up.
    """
    frac, whole = math.modf(ts)
    micro = round(frac * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    elif micro < 0:
        whole, micro = whole - 1, micro + 1_000_000
    t = time.gmtime(whole)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"{text}.{micro:06d}+00:00" if micro else f"{text}+00:00"


def clock_time(ts: float) -> str:
    """Local wall-clock time with its offset, to the second, for log-style lines."""
    from datetime import datetime

    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def shell_join(argv: list[str]) -> str:
    """The command line as a shell would take it back: `shlex.join`'s text, without `re`."""
    return " ".join(_shell_quote(arg) for arg in argv)


def _shell_quote(arg: str) -> str:
    if not arg:
        return "''"
    if all(ch in _SHELL_SAFE for ch in arg):
        return arg
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def valid_text(text: str) -> str:
    """`text` as valid UTF-8: bytes that were not (kept by Python as surrogates) become U+FFFD.

    Arguments, file names and environment names may hold such bytes; SQLite and JSON need text.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def safe_text(data: bytes | str) -> str:
    """Text that cannot drive a terminal: invalid UTF-8 replaced, control characters shown as \\xNN.

    Tab is kept; everything else below 0x20, DEL and the C1 range are escaped, so stored bytes
    can never move the cursor, retitle the window or ring the bell.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or ch == "\t" else f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
        for ch in text
    )

"""The end of a run's output, masked and bounded, for hooks (STEPFLOW_LOG_TAIL) and pings.

Read-only. The store holds output already masked (stepflow.secrets runs before anything is
stored); `mask` masks again with what the live run knows, for values learnt late.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DEFAULT_LINES = 50
DEFAULT_BYTES = 10_000  # healthchecks.io keeps 10,000 bytes of a ping body by default


def bounded_tail(data: bytes, *, max_bytes: int = DEFAULT_BYTES, mask: Callable[[bytes], bytes] | None = None) -> bytes:
    """The last `max_bytes` of `data` (masked first), starting at a line when one starts within. Pure."""
    if mask is not None:
        data = mask(data)
    if len(data) <= max_bytes:
        return data
    cut = data[-max_bytes:]
    newline = cut.find(b"\n")
    return cut[newline + 1:] if 0 <= newline < len(cut) - 1 else cut


def log_tail(store: Any, run_id: str, line_count: int, *, lines: int = DEFAULT_LINES, max_bytes: int = DEFAULT_BYTES,
             mask: Callable[[bytes], bytes] | None = None) -> bytes:
    """The last `lines` output lines of run `run_id` (of `line_count`), joined, masked, bounded.

    Reads only the last blocks (`after_line`), so a long run costs no more than a short one.
    """
    after = max(line_count - lines - 1, -1)
    texts = [line.text for line in store.log_lines(run_id, after_line=after)]
    return bounded_tail(b"\n".join(texts[-lines:]) + (b"\n" if texts else b""), max_bytes=max_bytes, mask=mask)

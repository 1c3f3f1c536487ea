"""What a run shows while it happens: plain lines for cron, quiet, JSON events, a live view."""

from __future__ import annotations

import sys
from typing import IO

from stepflow.config import dumb_terminal
from stepflow.run.recorder import View


def resolve_output(mode: str, *, stream: IO[str] | None = None) -> str:
    """`auto` is live on a terminal and plain otherwise (cron, pipes, CI)."""
    stream = stream or sys.stderr
    if mode != "auto":
        return mode
    return "live" if stream.isatty() and not dumb_terminal() else "plain"


def make_view(mode: str, *, color: bool = True) -> View:
    """The view for an output mode already resolved by `resolve_output`."""
    if mode == "quiet":
        from stepflow.views.quiet import QuietView

        return QuietView()
    if mode == "json":
        from stepflow.views.jsonl import JsonView

        return JsonView()
    if mode == "live":
        try:
            from stepflow.views.live import LiveView  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            pass
        else:
            return LiveView(color=color)  # type: ignore[no-any-return,unused-ignore]
    from stepflow.views.plain import PlainView

    return PlainView()

"""What a run shows while it happens: plain lines for cron, quiet, JSON events, a live view."""

from __future__ import annotations

from collections.abc import Callable

from stepflow.views.base import Terminal, View

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)

if TYPE_CHECKING:
    from stepflow.hints import Hints


def resolve_output(mode: str, terminal: Terminal) -> str:
    """`auto` is live on a terminal and plain otherwise (cron, pipes, CI, TERM=dumb)."""
    if mode != "auto":
        return mode
    return "live" if terminal.live else "plain"


def make_view(mode: str, terminal: Terminal, *, hints: Callable[[str], Hints] | None = None,
              artifacts: str | None = None) -> View:
    """The view for an output mode already resolved by `resolve_output`.

    `hints` loads the ETA hints of earlier runs of a name, `artifacts` is the store's artifact
    folder: the live view uses both (hints are read on its own thread).
    """
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
            return LiveView(terminal=terminal, hints=hints, artifacts=artifacts)  # type: ignore[no-any-return,unused-ignore]
    from stepflow.views.plain import PlainView

    return PlainView()


__all__ = ["Terminal", "View", "make_view", "resolve_output"]

"""Inline SVG for the dashboard: a step's bar on the run timeline, a duration history. Pure.

Geometry is in SVG attributes only (the pages' CSP forbids inline style); every text that
came from a run is HTML-escaped.
"""

from __future__ import annotations

from html import escape

from stepflow import fmt


def timeline_bar(start: float | None, end: float | None, *, origin: float, span: float, status: str) -> str:
    """A bar from `start` to `end` seconds (run time), on a 0..100 axis covering `span` seconds."""
    if start is None or span <= 0:
        return '<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true"></svg>'
    x = max(0.0, min(100.0, (start - origin) / span * 100))
    width = max(0.6, min(100.0 - x, ((end if end is not None else origin + span) - start) / span * 100))
    return (f'<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true">'
            f'<rect class="track" x="0" y="3" width="100" height="4" rx="1"></rect>'
            f'<rect class="st-{escape(status)}" x="{x:.2f}" y="0" width="{width:.2f}" height="10" rx="1"></rect></svg>')


def history_chart(points: list[tuple[str, float | None, str]], *, title: str, height: int = 120) -> str:
    """Durations oldest to newest as bars; `points` are (label, seconds, status), label on hover."""
    values = [v for _, v, _ in points if v is not None]
    if not values:
        return '<p class="muted">No finished runs yet.</p>'
    top = max(values) or 1.0
    n = len(points)
    slot = 1000 / max(n, 16)  # a few runs stay narrow bars on the left, as history fills in
    bars = []
    for i, (label, seconds, status) in enumerate(points):
        if seconds is None:
            continue
        h = max(1.5, seconds / top * (height - 20))
        tip = escape(f"{label}: {fmt.duration(seconds)} ({status})")
        bars.append(f'<rect class="st-{escape(status)}" x="{i * slot + slot * 0.15:.1f}" y="{height - h:.1f}"'
                    f' width="{max(slot * 0.7, 1):.1f}" height="{h:.1f}"><title>{tip}</title></rect>')
    median = sorted(values)[len(values) // 2]
    y = height - max(1.5, median / top * (height - 20))
    return (f'<figure class="chart"><figcaption>{escape(title)} <span class="muted">max {fmt.duration(top)},'
            f' median {fmt.duration(median)}</span></figcaption>'
            f'<svg viewBox="0 0 1000 {height}" preserveAspectRatio="none" role="img" aria-label="{escape(title)}"'
            f' class="h{height}">'
            f'{"".join(bars)}<line class="median" x1="0" x2="1000" y1="{y:.1f}" y2="{y:.1f}"></line></svg></figure>')

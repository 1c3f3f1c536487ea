"""Cut a stream of output chunks into complete lines, with marker lines set apart.

Pure: no I/O and no clock. The hot path works on whole chunks: one `lower()` and a few `find`s
per chunk for the union of the dialects' needles (dialects.base.Prefilter); ordinary
lines are never split apart here, and only candidate lines are decoded and parsed. Chunks
arrive already masked (stepflow.run.secrets): the splitter knows nothing of secrets.
"""

from __future__ import annotations

from collections.abc import Sequence

from stepflow.dialects.base import Dialect, Marker, Prefilter, gate_of
from stepflow.typenames import Protocol

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)


class LineSink(Protocol):
    def lines(self, stream: int, data: bytes, count: int, cut: int) -> None:
        """`count` complete lines joined by b"\\n"; `cut` bytes were dropped from the single line."""

    def marker(self, stream: int, marker: Marker) -> None:
        """A marker a line carried, in the line's place among the lines (a line may carry several)."""


class LineSplitter:
    """Per-stream line assembly with a cap on stored line length, and marker lines parsed by
    the first of `dialects` that claims them (default: the stepflow dialect).

    Lines longer than `max_line` keep their first `max_line` bytes; the rest is counted in
    `cut`, so memory stays bounded however long a line without a newline grows.
    """

    def __init__(
        self, sink: LineSink, *, max_line: int, marker_streams: frozenset[int] = frozenset({1}),
        dialects: Sequence[Dialect] | None = None,
    ) -> None:
        if dialects is None:
            from stepflow.dialects.stepflow import StepflowDialect

            dialects = [StepflowDialect()]
        self.sink = sink
        self.max_line = max_line
        self.marker_streams = marker_streams
        self.dialects: tuple[Dialect, ...] = tuple(dialects)
        gates = [gate_of(d) for d in self.dialects]
        # a chunk holding no dialect's gate holds no marker; one dialect without a gate: no shortcut
        self.prefilter = Prefilter((n for d in self.dialects for n in d.needles),
                                   gates=() if None in gates else dict.fromkeys(g for g in gates if g))
        self._tail: dict[int, bytes] = {1: b"", 2: b""}
        self._cut: dict[int, int] = {1: 0, 2: 0}

    def feed(self, stream: int, data: bytes) -> None:
        """Take a chunk as read; complete lines go to the sink, a partial last line waits."""
        nl = data.rfind(b"\n")
        if nl < 0:
            self._grow_tail(stream, data)
            return
        other = 3 - stream
        if self._tail.get(other) or self._cut.get(other):
            # The other stream's partial line (a `read -p` prompt on stderr) was written before
            # this line: it is stored first, so the logs keep the order a terminal showed.
            self._emit_one(other, self._tail[other], self._cut[other])
            self._tail[other], self._cut[other] = b"", 0
        tail, cut = self._tail[stream], self._cut[stream]
        first_nl = data.find(b"\n")
        if cut or len(tail) + first_nl > self.max_line:  # the line the tail began is too long
            self._grow_tail(stream, data[:first_nl])
            self._emit_one(stream, self._tail[stream], self._cut[stream])
            region = data[first_nl + 1 : nl] if first_nl < nl else None
        else:
            region = tail + data[:nl] if tail else data[:nl]
        self._tail[stream], self._cut[stream] = b"", 0
        if region is not None:
            # Lines inside one read are shorter than the read: only a read longer than
            # max_line can hold a line to cut (with the default 1 MiB cap, never).
            if len(data) > self.max_line:
                self._long_region(stream, region)
            else:
                self._region(stream, region)
        self._grow_tail(stream, data[nl + 1 :])

    def pieces(self, stream: int, data: bytes) -> list[bytes]:
        """`data` cut after each line that may hold a marker, so whoever passes the output on
        can write each piece before the markers it carries are told (plain mode, where the
        step lines and the output share one file). Pure; [data] when no line may hold one."""
        if stream not in self.marker_streams:
            return [data]
        spans = self.prefilter.spans(data)
        if not spans:
            return [data]
        out, pos = [], 0
        for _start, end in spans:
            if end < len(data) and end + 1 > pos:
                out.append(data[pos : end + 1])
                pos = end + 1
        if pos < len(data):
            out.append(data[pos:])
        return out

    def close(self) -> None:
        """The streams ended: a last line without a newline is still a line."""
        for stream in (1, 2):
            if self._tail[stream] or self._cut[stream]:
                self._emit_one(stream, self._tail[stream], self._cut[stream])
            self._tail[stream], self._cut[stream] = b"", 0

    def _grow_tail(self, stream: int, data: bytes) -> None:
        if not data:
            return
        tail = self._tail[stream]
        room = self.max_line - len(tail)
        if room <= 0:  # a line past the cap: count what goes, copy nothing (a 1 GiB line stays cheap)
            self._cut[stream] += len(data)
        elif len(data) <= room:
            self._tail[stream] = tail + data if tail else data
        else:
            self._tail[stream] = tail + data[:room]
            self._cut[stream] += len(data) - room

    def _emit_one(self, stream: int, line: bytes, cut: int) -> None:
        markers = self._parse(stream, line[: self.max_line])
        if not markers:
            self.sink.lines(stream, line, 1, cut)
        for marker in markers:
            self.sink.marker(stream, marker)

    def _parse(self, stream: int, line: bytes) -> list[Marker]:
        if stream not in self.marker_streams:
            return []
        dialects = self.dialects
        if len(dialects) == 1:
            return dialects[0].parse(line.decode("utf-8", "replace"))
        lowered = line.lower()
        text = line.decode("utf-8", "replace")
        for dialect in dialects:
            if any(needle in lowered for needle in dialect.needles):
                markers = dialect.parse(text)
                if markers:
                    return markers
        return []

    def _region(self, stream: int, region: bytes) -> None:
        """Complete lines joined by b"\\n" (at least one, maybe empty), none over max_line."""
        spans = self.prefilter.spans(region) if stream in self.marker_streams else []
        pos = 0
        for start, end in spans:
            markers = self._parse(stream, region[start:end])
            if not markers:
                continue
            if start > pos:
                block = region[pos : start - 1]
                self.sink.lines(stream, block, block.count(b"\n") + 1, 0)
            for marker in markers:
                self.sink.marker(stream, marker)
            pos = end + 1
        if pos == 0:
            self.sink.lines(stream, region, region.count(b"\n") + 1, 0)
        elif pos <= len(region):
            block = region[pos:]
            self.sink.lines(stream, block, block.count(b"\n") + 1, 0)

    def _long_region(self, stream: int, region: bytes) -> None:
        """Rare (max_line set below the read size): cut the long lines, keep runs of short ones whole."""
        run_start = start = 0
        while start <= len(region):
            end = region.find(b"\n", start)
            stop = len(region) if end < 0 else end
            if stop - start > self.max_line:
                if start > run_start:
                    self._region(stream, region[run_start : start - 1])
                self._emit_one(stream, region[start : start + self.max_line], stop - start - self.max_line)
                run_start = stop + 1
            start = stop + 1
        if run_start <= len(region):
            self._region(stream, region[run_start:])

"""Live events for every client from ONE watcher per server process.

One asyncio task polls the store's change counter (`data.data_version`) once per interval.
When it moves, the watcher reads what changed once, for all clients: new lines, steps and
status of each followed run (one read per followed run, not per client), and the newest runs
for the runs list. Each event is encoded once as server-sent-event bytes and put on the queue
of every subscriber. A client too slow to keep up is dropped; its browser reconnects with
Last-Event-ID and catches up from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from stepflow.serve import data
from stepflow.serve.ansi import segments
from stepflow.store.models import OPEN_STATUSES, STREAM_NAMES, LogLine

CATCH_UP_PAGE = 2000
QUEUE_SIZE = 256  # events waiting for one client before it is dropped


@dataclass(frozen=True, slots=True)
class Event:
    """One encoded event as queued for clients; a `lines` event keeps its lines for late joiners."""

    body: bytes
    lines: list[dict[str, Any]] | None = None


END = Event(b"")  # put on a queue: the stream is over
HEARTBEAT = Event(b": heartbeat\n\n")


def sse(event: str, payload: Any, *, event_id: int | None = None) -> bytes:
    """One server-sent event; the JSON holds no newline, so one `data:` line carries it."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def line_dict(line: LogLine) -> dict[str, Any]:
    text = line.text.decode("utf-8", "replace")
    return {"n": line.number, "step": line.step_index, "stream": STREAM_NAMES.get(line.stream, str(line.stream)),
            "ts": line.ts, "text": text, "seg": segments(text), "cut": line.cut}


@dataclass(eq=False)
class Channel:
    """The subscribers of one run and how far the watcher has read it."""

    run_id: str
    cursor: int  # last line number published
    steps_sig: Any = None
    subscribers: set[asyncio.Queue[Event]] = field(default_factory=set)


class Hub:
    """The watcher and its subscribers. Start with `run()` as a task; stop by cancelling it."""

    def __init__(self, src: data.Source, *, interval: float = 0.1, heartbeat: float = 15.0,
                 sweep_every: float = 5.0) -> None:
        self.src = src
        self.interval = interval
        self.heartbeat = heartbeat
        self.sweep_every = sweep_every
        self.channels: dict[str, Channel] = {}
        self.list_subscribers: set[asyncio.Queue[Event]] = set()
        self.version: int | None = None
        self.polls = 0  # data_version reads: one per interval, however many clients
        self.reads = 0  # reads of a followed run after a change: one per run, however many clients
        self.started = time.time()

    # -- the watcher -------------------------------------------------------------------------

    async def run(self) -> None:
        swept = 0.0
        while True:
            try:
                await self.tick(sweep=time.monotonic() - swept >= self.sweep_every)
            except Exception:  # noqa: BLE001 - a store hiccup must not end live updates for good
                await asyncio.sleep(1.0)
            if time.monotonic() - swept >= self.sweep_every:
                swept = time.monotonic()
            await asyncio.sleep(self.interval)

    async def tick(self, *, sweep: bool = False) -> None:
        if sweep:
            await asyncio.to_thread(data.sweep_abandoned, self.src)
        version = data.data_version(self.src)
        self.polls += 1
        if version == self.version:
            return
        self.version = version
        for channel in list(self.channels.values()):
            if channel.subscribers:
                await self._advance(channel)
        if self.list_subscribers:
            payload = await asyncio.to_thread(self._list_payload)
            self._fan_out(self.list_subscribers, Event(sse("runs", payload)))

    def _list_payload(self) -> dict[str, Any]:
        return {"runs": data.list_runs(self.src, limit=50), "active": data.active_runs(self.src)}

    async def _advance(self, channel: Channel) -> None:
        run, steps, lines = await asyncio.to_thread(self._read, channel.run_id, channel.cursor)
        self.reads += 1
        events = []
        if lines:
            channel.cursor = lines[-1].number
            dicts = [line_dict(x) for x in lines]
            events.append(Event(sse("lines", dicts, event_id=channel.cursor), dicts))
        sig = [(s.step_index, s.status, s.completed_at) for s in steps]
        if sig != channel.steps_sig:
            channel.steps_sig = sig
            events.append(Event(sse("steps", data.step_summaries(steps), event_id=channel.cursor)))
        ended = run is None or run.status not in OPEN_STATUSES
        if run is not None:
            events.append(Event(sse("run", data.run_summary(run), event_id=channel.cursor)))
        if ended:
            events.append(Event(sse("end", data.run_summary(run) if run else {}, event_id=channel.cursor)))
        for event in events:
            self._fan_out(channel.subscribers, event)
        if ended:
            self._fan_out(channel.subscribers, END)
            self.channels.pop(channel.run_id, None)

    def _read(self, run_id: str, cursor: int) -> tuple[Any, Any, list[LogLine]]:
        run, steps = data.run_state(self.src, run_id)  # status first: lines read after it are complete
        return run, steps, data.log_lines(self.src, run_id, after=cursor)

    def _fan_out(self, queues: set[asyncio.Queue[Event]], event: Event) -> None:
        for queue in list(queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                queues.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(END)

    # -- subscribers -------------------------------------------------------------------------

    @property
    def clients(self) -> int:
        return len(self.list_subscribers) + sum(len(c.subscribers) for c in self.channels.values())

    async def run_events(self, run_id: str, *, after: int = -1) -> AsyncIterator[bytes]:
        """The event stream of one run from line `after` on: catch-up from the store, then live."""
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        sent = after
        channel: Channel | None = None
        try:
            yield b": stepflow\nretry: 2000\n\n"
            while True:  # catch up until the watcher has published nothing beyond what we sent
                lines = await asyncio.to_thread(data.log_lines, self.src, run_id, after=sent, limit=CATCH_UP_PAGE)
                if lines:
                    sent = lines[-1].number
                    yield sse("lines", [line_dict(x) for x in lines], event_id=sent)
                    continue
                channel = self.channels.get(run_id)
                if channel is None or channel.cursor <= sent:
                    break
            run, steps = await asyncio.to_thread(data.run_state, self.src, run_id)
            rest = await asyncio.to_thread(data.log_lines, self.src, run_id, after=sent)
            if rest:
                sent = rest[-1].number
                yield sse("lines", [line_dict(x) for x in rest], event_id=sent)
            yield sse("steps", data.step_summaries(steps), event_id=sent)
            if run is None or run.status not in OPEN_STATUSES:
                yield sse("end", data.run_summary(run) if run else {}, event_id=sent)
                return
            yield sse("run", data.run_summary(run), event_id=sent)
            channel = self.channels.get(run_id)
            if channel is None:
                channel = self.channels[run_id] = Channel(run_id, sent)
            channel.subscribers.add(queue)
            async for event in self._drain(queue):
                if event.lines is None:
                    yield event.body
                    continue
                # Joined while the watcher was behind what we read ourselves: skip lines sent.
                fresh = event.lines if event.lines[0]["n"] > sent else [x for x in event.lines if x["n"] > sent]
                if fresh:
                    sent = fresh[-1]["n"]
                    yield event.body if fresh is event.lines else sse("lines", fresh, event_id=sent)
        finally:
            if channel is not None:
                channel.subscribers.discard(queue)
                if not channel.subscribers and self.channels.get(run_id) is channel:
                    del self.channels[run_id]

    async def list_events(self) -> AsyncIterator[bytes]:
        """The runs list stream: the newest runs and the active ones, whenever the store changes."""
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self.list_subscribers.add(queue)
        try:
            yield b": stepflow\nretry: 2000\n\n"
            yield sse("runs", await asyncio.to_thread(self._list_payload))
            async for event in self._drain(queue):
                yield event.body
        finally:
            self.list_subscribers.discard(queue)

    async def _drain(self, queue: asyncio.Queue[Event]) -> AsyncIterator[Event]:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), self.heartbeat)
            except TimeoutError:
                yield HEARTBEAT
                continue
            if event is END:
                return
            yield event

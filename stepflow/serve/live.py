"""Live events for every client from ONE Watch per server process.

The hub opens one `Watch` of the store (Store.watch: SQLite polls PRAGMA data_version for all
its waiters, PostgreSQL listens on one connection) and waits on it on a thread of its own.
When a commit moves it, the hub reads what changed once, for all clients: new lines, steps and
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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stepflow.history.detail import run_summary
from stepflow.record import field, record
from stepflow.serve import data
from stepflow.serve.ansi import segments
from stepflow.store.base import OPEN_STATUSES, STREAM_NAMES, LogLine, Watch

CATCH_UP_PAGE = 2000
QUEUE_SIZE = 256  # events waiting for one client before it is dropped


@record(frozen=True)
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


@record(eq=False)
class Channel:
    """The subscribers of one run and how far the watcher has read it."""

    run_id: str
    cursor: int  # last line number published
    steps_sig: Any = None
    subscribers: set[asyncio.Queue[Event]] = field(default_factory=set)


class Hub:
    """The watcher and its subscribers. Start with `run()` as a task; stop by cancelling it.

    `interval`: the longest one wait on the Watch lasts before the hub looks at its own clock
    (the abandoned sweep every `sweep_every` seconds); a commit wakes it at once.
    """

    def __init__(self, src: data.Source, *, interval: float = 1.0, heartbeat: float = 15.0,
                 sweep_every: float = 5.0) -> None:
        self.src = src
        self.interval = interval
        self.heartbeat = heartbeat
        self.sweep_every = sweep_every
        self.channels: dict[str, Channel] = {}
        self.list_subscribers: set[asyncio.Queue[Event]] = set()
        self.version: int | None = None  # the Watch cursor last acted on; None until the watch starts
        self.polls = 0  # waits on the Watch that returned: about one per commit, however many clients
        self.reads = 0  # reads of a followed run after a change: one per run, however many clients
        self.started = time.time()

    # -- the watcher -------------------------------------------------------------------------

    async def run(self) -> None:
        """Wait on the store's Watch and act on each change, until cancelled."""
        loop = asyncio.get_running_loop()
        waiter = ThreadPoolExecutor(1, thread_name_prefix="stepflow-watch")  # a wait never holds a pool thread
        watch: Watch | None = None
        try:
            swept, seen = 0.0, 0
            while True:
                try:
                    if watch is None:
                        watch = await loop.run_in_executor(waiter, self.src.watch)
                        seen = self.version = await loop.run_in_executor(waiter, watch.cursor)
                    if time.monotonic() - swept >= self.sweep_every:
                        swept = time.monotonic()
                        await asyncio.to_thread(data.sweep_abandoned, self.src)
                    cursor = await loop.run_in_executor(waiter, watch.wait, seen, self.interval)
                    self.polls += 1
                    if cursor != seen:
                        seen = self.version = cursor
                        await self.changed()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a store hiccup (no store yet, locked) must not end live updates
                    self.version = None  # nothing kept is known fresh now (api.respond)
                    if watch is not None:
                        with contextlib.suppress(Exception):
                            await loop.run_in_executor(waiter, watch.close)
                        watch = None
                    await asyncio.sleep(1.0)
        finally:
            waiter.shutdown(wait=False, cancel_futures=True)
            if watch is not None:
                await asyncio.to_thread(self._close_after, waiter, watch)

    @staticmethod
    def _close_after(waiter: ThreadPoolExecutor, watch: Watch) -> None:
        waiter.shutdown(wait=True)  # the wait in progress ends within `interval`
        watch.close()

    async def changed(self) -> None:
        """Something was committed: read each followed run and the runs list once, for everyone."""
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
            events.append(Event(sse("run", run_summary(run), event_id=channel.cursor)))
        if ended:
            events.append(Event(sse("end", run_summary(run) if run else {}, event_id=channel.cursor)))
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
        """The event stream of one run from line `after` on: catch-up from the store, then live.

        The client joins the run's channel BEFORE its last read of the store: a commit after
        the join reaches it through the hub, one before through that read (lines sent twice
        are skipped by number), so none falls between.
        """
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        sent = after
        channel: Channel | None = None
        try:
            yield b": stepflow\nretry: 2000\n\n"
            while True:  # the bulk of the catch-up, a page at a time
                lines = await asyncio.to_thread(data.log_lines, self.src, run_id, after=sent, limit=CATCH_UP_PAGE)
                if not lines:
                    break
                sent = lines[-1].number
                yield sse("lines", [line_dict(x) for x in lines], event_id=sent)
            channel = self.channels.get(run_id)
            if channel is None:
                channel = self.channels[run_id] = Channel(run_id, sent)
            channel.subscribers.add(queue)
            run, steps = await asyncio.to_thread(data.run_state, self.src, run_id)
            rest = await asyncio.to_thread(data.log_lines, self.src, run_id, after=sent)
            if rest:
                sent = rest[-1].number
                yield sse("lines", [line_dict(x) for x in rest], event_id=sent)
            yield sse("steps", data.step_summaries(steps), event_id=sent)
            if run is None or run.status not in OPEN_STATUSES:
                yield sse("end", run_summary(run) if run else {}, event_id=sent)
                return
            yield sse("run", run_summary(run), event_id=sent)
            async for event in self._drain(queue):
                if event.lines is None:
                    yield event.body
                    continue
                # Lines this client read itself before the hub published them: skip those.
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

"""The store sink: a run's events become store writes, committed from a background thread.

`StoreSink` is the one place that turns events (stepflow.events) into store writes; `Writer`
commits them batched, at most `max_delay` late, fail-open.

The reader never waits for SQLite. When the store cannot be written (locked past the
writer's short busy timeout, disk full, unreachable), the batch goes to the run's spool
(stepflow.store.spool) and so does the rest of the run, in order, until the writer (every
SPOOL_RETRY seconds, and once at the end) or a later command writes the spool to the store.
Past the spool's bound output is dropped and counted, never the run and step rows. Only when
no spool folder can be written either do writes wait in memory and are retried; past a memory
bound the oldest output is dropped and counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from stepflow import events as ev
from stepflow.errors import StepflowError, describe_os_error
from stepflow.fmt import iso
from stepflow.record import record
from stepflow.store import Store
from stepflow.store.base import (
    Artifact,
    Change,
    LogBlock,
    NewArtifact,
    NewRun,
    NewStep,
    Run,
    RunChange,
    Step,
    StepChange,
    Write,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from stepflow.store.spool import Spool  # the spool is imported when a run first needs one

RETRY_DELAY = 1.0
# A step's start and end are committed within this: promptly for a follower (logs --follow,
# serve), yet the steps of a fast job share a transaction instead of one each, which 100 runs
# at once on two cores feel as contention for the write lock (issue 17).
SOON = 0.02
HIGH_WATER = 2  # buffers of output waiting for a healthy store make the reader wait...
MAX_STALL = 2.0  # ... at most this long at a time, so a slow store never holds the command for long
MAX_PENDING_WRITES = 5000  # rows of steps and runs waiting: a million steps must not pile up in memory
SPOOL_RETRY = 5.0  # seconds between the writer's tries to hand its spool to the store
FINAL_WAIT = 1.0  # seconds the writer waits for the lock to hand over its spool at the run's end


@record
class Written:
    """What was committed, for STEPFLOW_LOG_LEVEL=debug."""

    commits: int = 0
    writes: int = 0
    output_bytes: int = 0


@record
class Losses:
    """What could not be recorded, for the closing message."""

    lines: int = 0
    writes: int = 0
    reason: str | None = None
    spooled: list[str] | None = None  # spool files still holding part of the run at its end
    spool_peak: int = 0  # most bytes the run's spool held at once

    def __bool__(self) -> bool:
        return bool(self.lines or self.writes)


class Writer:
    """One thread owns the store connection; everyone else calls `put`."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        *,
        buffer_size: int,
        max_delay: float = 0.25,
        max_pending: int = 16 * 1024 * 1024,
        on_problem: Callable[[str], None] = lambda message: None,
        spool: Callable[[], Spool] | None = None,
        on_writable: Callable[[], None] | None = None,
    ) -> None:
        self._open_store = open_store
        self._on_writable = on_writable  # told once, from this thread, when the store first takes a write
        self._make_spool = spool
        self._spool: Spool | None = None
        self._spooling = False  # part of the run is in the spool: the rest follows it there
        self._spool_seq = 0
        self._spool_tried = 0.0
        self.buffer_size = buffer_size
        self.max_delay = max_delay
        self.max_pending = max(max_pending, buffer_size)
        self.on_problem = on_problem
        self.losses = Losses()
        self.written = Written()
        self._pending: list[Write] = []
        self._pending_bytes = 0
        self._first_at: float | None = None
        self._urgent = False
        self._soon_at: float | None = None
        self._closing = False
        self._cond = threading.Condition()
        self._store: Store | None = None
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="stepflow-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: Write, *, urgent: bool = False, soon: bool = False) -> None:
        """Queue a write; urgent ones are committed at once, `soon` ones within SOON seconds.
        Safe from any thread."""
        size = len(item.data) if isinstance(item, LogBlock) else 0
        with self._cond:
            if self._behind() and not self._failing:
                # Backpressure: the store is healthy but slower than the output (or than a
                # flood of steps). Waiting here keeps memory bounded; the command feels it as
                # a slower pipe, briefly.
                self._cond.notify()
                self._cond.wait_for(lambda: not self._behind() or self._failing, timeout=MAX_STALL)
            if isinstance(item, Change) and self._merge(item):
                pass
            else:
                self._pending.append(item)
            self._pending_bytes += size
            if self._pending_bytes > self.max_pending:
                self._drop_oldest_output()
            if self._first_at is None:
                self._first_at = time.monotonic()
            if urgent or self._pending_bytes >= self.buffer_size:
                self._urgent = True
                self._cond.notify()
            elif soon and self._soon_at is None:
                self._soon_at = time.monotonic() + SOON
                self._cond.notify()
            elif len(self._pending) == 1:
                self._cond.notify()

    def _behind(self) -> bool:
        # Until the store is first open (psycopg imported, the server connected to: ~0.3 s) the
        # output may run ahead up to half the memory bound, so a short run's command does not
        # wait for that, nor a long one's stall from its first lines.
        limit = self.max_pending // 2 if self._store is None else HIGH_WATER * self.buffer_size
        return self._pending_bytes > limit or len(self._pending) > MAX_PENDING_WRITES

    def _merge(self, update: Change) -> bool:
        """Fold an update into a pending one for the same row: a million step changes stay cheap."""
        for item in reversed(self._pending[-8:]):
            if isinstance(item, Change) and type(item) is type(update) and item.id == update.id:
                item.merge(update)
                return True
        return False

    def close(self) -> Losses:
        """Commit what is pending (one last try if the store is failing) and stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        return self.losses

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing:
                    if self._pending:
                        due = (self._first_at or 0.0) + (RETRY_DELAY if self._failing else self.max_delay)
                        if self._soon_at is not None and not self._failing:
                            due = min(due, self._soon_at)
                        wait = due - time.monotonic()
                        if (self._urgent and not self._failing) or wait <= 0:
                            break
                        self._cond.wait(wait)
                    elif self._spooling:
                        # A quiet run's spool goes to the store as soon as it is back, not at the end.
                        wait = self._spool_tried + SPOOL_RETRY - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                batch, self._pending = self._pending, []
                self._pending_bytes = 0
                self._first_at = None
                self._urgent = False
                self._soon_at = None
                closing = self._closing
                self._cond.notify_all()  # a reader held back by put() may go on
            if batch:
                self._commit(batch, final=closing)
            elif self._spooling and closing:  # the run's end came with nothing more to write
                self._drain_at_end()
            elif self._spooling:  # a retry is due, and nothing new came meanwhile
                self._drain_spool(wait=0.0)
            if closing:
                with self._cond:
                    if not self._pending:
                        break
        if self._spool is not None:
            self.losses.spool_peak = self._spool.peak
            left = self._spool.close()
            self.losses.spooled = [str(p) for p in left] or None
        if self._store is not None:
            try:
                self._store.close()
            except Exception:  # closing is best effort; the data is committed or counted lost
                pass

    def _commit(self, writes: list[Write], *, final: bool) -> None:
        if self._spooling and time.monotonic() - self._spool_tried >= SPOOL_RETRY:
            self._drain_spool(wait=0.0)
        if self._spooling:
            if not self._to_spool(writes):
                self._failed(writes, self.losses.reason or "the spool cannot be written", final=final)
            elif final:
                self._drain_at_end()
            return
        try:
            if self._store is None:
                self._store = self._open_store()
            self._store.write(writes)
            self.written.commits += 1
            self.written.writes += len(writes)
            self.written.output_bytes += sum(len(w.data) for w in writes if isinstance(w, LogBlock))
        except (StepflowError, OSError) as exc:
            reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            if self._to_spool(writes, reason=reason):
                return
            self._failed(writes, reason, final=final)
            return
        except Exception as exc:  # noqa: BLE001 - a value SQLite refuses: retrying cannot help
            self._lose(writes)
            self.losses.reason = self.losses.reason or (str(exc) or type(exc).__name__)
            self.on_problem(f"could not record part of the run: {str(exc) or type(exc).__name__}")
            return
        if self._failing:
            self._failing = False
            self.on_problem("store is writable again; recording goes on")
        self._writable()

    def _to_spool(self, writes: list[Write], *, reason: str | None = None) -> bool:
        """Append `writes` to the run's spool; False when there is no spool or it cannot be written."""
        if self._make_spool is None:
            return False
        try:
            if self._spool is None:
                self._spool = self._make_spool()
            spool = self._spool
            size = sum(len(w.data) for w in writes if isinstance(w, LogBlock))
            if spool.over_bound(size):
                from stepflow.store.spool import encoded_size

                # Output up to the bound is kept, in order; run and step rows always are.
                kept: list[Write] = []
                room = spool.max_bytes - spool.used
                for w in writes:
                    if isinstance(w, LogBlock):
                        if encoded_size(len(w.data)) > room:
                            self._lose([w])
                            room = 0
                            continue
                        room -= encoded_size(len(w.data))
                    kept.append(w)
                self.losses.reason = self.losses.reason or f"the spool is full (STEPFLOW_SPOOL_MAX={spool.max_bytes})"
                writes = kept
            if not writes:
                return True
            self._spool_seq += 1
            spool.append(self._spool_seq, writes)
        except OSError as exc:
            self.losses.reason = self.losses.reason or f"spool: {describe_os_error(exc)}"
            return False
        if not self._spooling:
            self._spooling = True
            self._failing = True  # no backpressure: the spool takes output as fast as it comes
            self._spool_tried = time.monotonic()
            self.on_problem(f"{reason or 'store not writable'}; the command goes on, and the run is kept in"
                            f" {spool.path} until the store takes it")
        return True

    def _drain_spool(self, *, wait: float) -> None:
        """Hand the spooled batches to the store, in order; once all are in, write directly again."""
        self._spool_tried = time.monotonic()
        spool = self._spool
        if spool is None:
            self._spooling = False
            return
        try:
            if self._store is None:
                self._store = self._open_store()
            for seq, writes in spool.batches():
                self._store.apply_spooled(spool.run_id, seq, writes, wait=wait)
        except (StepflowError, OSError):
            return  # still busy, full or away: the spool keeps it
        spool.clear()
        self._spooling = False
        self._failing = False
        self.on_problem("store is writable again; the spooled part of the run is stored, recording goes on")
        self._writable()

    def _writable(self) -> None:
        if self._on_writable is not None:
            told, self._on_writable = self._on_writable, None
            told()

    def _drain_at_end(self) -> None:
        # Once more at the run's end, unless the store refused the run just now: a frozen
        # server would keep stepflow another connect_timeout for the same answer.
        if time.monotonic() - self._spool_tried >= FINAL_WAIT:
            self._drain_spool(wait=FINAL_WAIT)

    def _failed(self, writes: list[Write], reason: str, *, final: bool) -> None:
        if not self._failing:
            self.on_problem(f"{reason}; the command goes on, output is kept in memory and retried")
        self._failing = True
        self.losses.reason = reason
        if final:
            self._lose(writes)
            return
        with self._cond:
            self._pending[:0] = writes  # first again: inserts must precede their updates
            self._pending_bytes = sum(len(w.data) for w in self._pending if isinstance(w, LogBlock))
            self._first_at = time.monotonic()
            self._drop_oldest_output()

    def _drop_oldest_output(self) -> None:
        if self._pending_bytes <= self.max_pending:
            return
        if self.losses.reason is None:
            self.losses.reason = "the store could not keep up with the output"
        kept: list[Write] = []
        for item in self._pending:
            if isinstance(item, LogBlock) and self._pending_bytes > self.max_pending:
                self._pending_bytes -= len(item.data)
                self.losses.lines += item.line_count
            else:
                kept.append(item)
        self._pending = kept

    def _lose(self, writes: list[Write]) -> None:
        for w in writes:
            if isinstance(w, LogBlock):
                self.losses.lines += w.line_count
            else:
                self.losses.writes += 1


class StoreSink:
    """A run's events as store writes (a Sink): the only module that builds them.

    Urgent writes (the run's row, step starts and ends, artifacts, the end) are committed at
    once, so `ls` and `show` see a step as it starts; output and metadata wait for a batch.
    """

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def handle(self, event: ev.Event) -> None:  # noqa: C901 - one case per event kind, flat
        put = self.writer.put
        if type(event) is ev.LinesRead:  # the hot path first: one per block of output
            step = event.step
            put(LogBlock(event.run.id, None if step is None else step.index, event.stream, event.first,
                         event.count, event.at, event.data, event.cut))
            return
        match event:
            case ev.RunStarted(s, facts):
                put(NewRun(Run(
                    id=s.id, name=s.name, command=s.command, status="running",
                    created_at=iso(s.started), created_ts=s.started, started_at=iso(s.started),
                    total_steps=0, completed_steps=0, current_step_index=-1, **facts,
                )), urgent=True)
            case ev.StepStarted(s, step):
                put(NewStep(Step(
                    id=step.id, execution_id=s.id, name=step.name, description=step.description,
                    step_index=step.index, status="running", created_at=iso(step.started),
                    started_at=iso(step.started), estimated_duration=step.expected,
                    stop_on_error=step.stop_on_error, metadata=step.metadata,
                )))
                put(RunChange(s.id, total_steps=s.step_count, current_step_index=step.index), soon=True)
            case ev.StepEnded(s, step, status, error):
                put(StepChange(
                    step.id, status=status, completed_at=iso(step.ended or 0.0), error_message=error,
                    exit_code=0 if status == "completed" else 1,
                    cpu_seconds=step.cpu_seconds, peak_rss=step.peak_rss, max_processes=step.max_processes,
                ))
                put(RunChange(s.id, completed_steps=s.completed_steps), soon=True)
            case ev.MetaSet(s, step, _key, _value, target):
                if step is None:
                    put(RunChange(s.id, metadata=dict(s.metadata)))
                elif target == "estimated_duration":
                    put(StepChange(step.id, estimated_duration=step.expected))
                elif target == "description":
                    put(StepChange(step.id, description=step.description))
                else:
                    put(StepChange(step.id, metadata=dict(step.metadata)))
            case ev.TestRecorded(s, step):
                if step is None:
                    put(RunChange(s.id, metadata=dict(s.metadata)))
                else:
                    put(StepChange(step.id, metadata=dict(step.metadata)))
            case ev.WarningRaised(s):
                put(RunChange(s.id, warnings=list(s.warnings)))
            case ev.RunErrorRaised(s):
                put(RunChange(s.id, error_message="; ".join(s.errors)))
            case ev.ArtifactCopied(s, step_id, _art, artifact_id, path, description, created, done):
                name = path.rsplit("/", 1)[-1] if done.source is None else done.source.rsplit("/", 1)[-1]
                put(NewArtifact(Artifact(
                    id=artifact_id, execution_id=s.id, step_id=step_id,
                    name=name, description=description,
                    file_path=done.stored or done.source or path, file_name=name,
                    file_size=done.size, mime_type=done.mime_type, artifact_type=done.kind,
                    created_at=iso(created), tags=[], metadata={}, sha256=done.sha256,
                    source_path=path,
                )), urgent=True)
            case ev.RunFinished(s, exit_code, error, cpu):
                put(RunChange(
                    s.id, status=s.status, exit_code=exit_code, completed_at=iso(s.ended or 0.0),
                    error_message=error,
                    # sampled by stepflow.run.resources and settled with wait4's figures
                    cpu_seconds=cpu, peak_rss=s.peak_rss, max_processes=s.max_processes,
                    line_count=s.lines, completed_steps=s.completed_steps,
                    lost_lines=self.writer.losses.lines,  # dropped so far; later losses cannot be stored
                ), urgent=True)
            case _:
                pass  # ArtifactAdded (stored once copied) and NoticeRaised: nothing the store keeps

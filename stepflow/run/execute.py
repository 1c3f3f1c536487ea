"""One `stepflow run`: build the supervisor, masking, line splitter, recorder, sinks and view,
and run the command to its end under one ExitStack, so whatever goes wrong the buffered output
is stored, the run is closed and the terminal is given back."""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable, Iterator
from types import TracebackType

from stepflow import procs
from stepflow.config import WRITER_BUSY_MS, Settings
from stepflow.errors import CommandNotExecutableError, CommandNotFoundError, ExitStatus, StepflowError
from stepflow.fmt import shell_join, valid_text
from stepflow.run import resources, signals
from stepflow.run.artifacts import Budget
from stepflow.run.backlog import Backlog
from stepflow.run.ci_sink import ci_sink
from stepflow.run.lines import LineSplitter
from stepflow.run.options import RunOptions, RunResult, default_name, dialects
from stepflow.run.recorder import Recorder, new_id
from stepflow.run.resources import Sampler
from stepflow.run.secrets import AddMaskCommand, Masker, matching
from stepflow.run.supervisor import FORWARDED, Outcome, Supervisor
from stepflow.run.writer import FINAL_WAIT, Losses, StoreSink, Writer
from stepflow.state import RunState
from stepflow.store import Store, open_store
from stepflow.views.base import View

TYPE_CHECKING = False
if TYPE_CHECKING:
    from stepflow.store.spool import Spool

__all__ = ["RunOptions", "RunResult", "default_name", "execute"]


class OutputFork:
    """Each chunk the supervisor reads: masked once (learning `::add-mask::`), then to the view
    as it is and to the line splitter (and so the recorder and the store)."""

    def __init__(self, masker: Masker, view: View, splitter: LineSplitter,
                 close_stream: Callable[[int], None]) -> None:
        self.masker = masker
        self.view = view
        self.splitter = splitter
        self.close_stream = close_stream

    def __call__(self, stream: int, data: bytes) -> None:
        data = self.masker.filter(stream, data)
        if getattr(self.view, "passes_output", False):
            # The output and the view's step lines may share one file (2>&1, a CI log): each
            # marker's line is written before what the marker makes the view say.
            shown = True
            for piece in self.splitter.pieces(stream, data):
                shown = self.view.raw(stream, piece) and shown
                self.splitter.feed(stream, piece)
        else:
            shown = self.view.raw(stream, data)
            self.splitter.feed(stream, data)
        if not shown:
            # Whoever read our output has gone (`stepflow run -- yes | head -1`): close the
            # command's pipe too, so it gets SIGPIPE as it would in the same pipeline alone.
            self.close_stream(stream)

    def close(self) -> None:
        """The output ended: what the masker held back, then a last line without a newline."""
        for stream in (1, 2):
            if held := self.masker.flush(stream):
                self.view.raw(stream, held)
                self.splitter.feed(stream, held)
        self.splitter.close()


def execute(options: RunOptions, settings: Settings, view: View, *,
            on_spawn: Callable[[int], None] = lambda _pid: None) -> RunResult:
    """Run the command to its end, recording it; the command's exit status is the result's.

    Never raises because of the store: problems go to `view.problem` and the run goes on.
    An unexpected exception (a bug) is raised once the run is recorded and closed as failed.
    `on_spawn` is told the command's pid (its process group) each time it starts (the --lock
    holder record); `options.retry` runs it again within this one run (stepflow.run.attempts).

    Raises:
        UsageError: `options.markers` names no known dialect (nothing was run).
    """
    readers = [AddMaskCommand(), *dialects(options.markers, anywhere=options.anywhere, env=options.env)]
    cwd = os.path.abspath(options.cwd or os.getcwd())
    started = time.time()
    env = dict(os.environ if options.env is None else options.env)
    masker = Masker([*options.masks, *matching(env, settings.mask_env).values(), *_store_secrets(settings)])
    # What is stored and shown is text; arguments, folders and names may hold bytes that are
    # not UTF-8 (the command itself still gets them exactly as given).
    state = RunState(id=options.run_id or new_id(),
                     name=masker.mask_text(valid_text(options.name or default_name(options.argv))),
                     command=masker.mask_text(valid_text(shell_join(options.argv))), started=started)
    def writer_store() -> Store:
        return open_store(_writer_settings(settings), appending=True)

    backlog = Backlog(settings, state.id, writer_store)  # other runs' spools, once the store takes writes
    writer = Writer(writer_store, buffer_size=settings.buffer_size,
                    # at STEPFLOW_LOG_LEVEL=error only losses are told, at the end
                    on_problem=view.problem if settings.log_level != "error" else lambda _m: None,
                    spool=lambda: _spool(settings, state.id), on_writable=backlog.start)

    def spawned(pid: int) -> None:
        _collect_from_now()
        on_spawn(pid)

    supervisor = _supervisor(options)(options.argv, cwd=cwd, env=options.env, timeout=options.timeout,
                                      kill_grace=options.kill_grace, on_spawn=spawned)
    ci = ci_sink(options.ci, env, on_problem=view.problem)  # the CLI asks for one in plain output only
    if ci is not None:
        readers = ci.reading(readers)
    recorder = Recorder(state, [StoreSink(writer), *([ci] if ci else []), view], artifacts_dir=settings.artifacts_dir,
                        artifact_max_size=settings.artifact_max_size, cwd=cwd,
                        budget=Budget(settings.artifact_run_max, settings.artifact_min_free),
                        on_critical_failure=supervisor.request_stop)
    splitter = LineSplitter(recorder, max_line=settings.max_line, dialects=readers,
                            marker_streams=frozenset({1, 2} if options.stderr_markers else {1}))
    fork = OutputFork(masker, view, _stored(options, splitter), supervisor.close_stream)
    sampler = Sampler(state, lambda: supervisor.pid)
    outcome: Outcome | None = None
    error: StepflowError | None = None
    losses = Losses()

    def close_run(_t: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None) -> None:
        """End the run in the store, whatever ended the command or stepflow's part in it."""
        nonlocal outcome, losses
        if outcome is None:  # stepflow itself failed (a bug, an interrupt) while following the command
            what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            outcome = Outcome(returncode=ExitStatus.ERROR, exit_status=ExitStatus.ERROR, crashed=what)
        resources.settle(state, outcome.cpu_seconds)
        with _signals_deferred():  # the command is gone: an impatient Ctrl-C must not lose its record
            try:
                recorder.finish(outcome)
            finally:
                losses = writer.close()
                backlog.stop(timeout=FINAL_WAIT)

    def close_view() -> None:
        state.lost_lines = losses.lines
        view.finish(state)
        if losses.spooled:
            view.problem(f"run {state.id[:8]} is kept in {', '.join(losses.spooled)}: the next stepflow command"
                         " that can write the store stores it (or \"stepflow db replay\")")
        if losses:
            view.problem(
                f"run {state.id[:8]} not fully recorded: {losses.lines} output lines and"
                f" {losses.writes} step/run updates lost ({losses.reason})"
            )

    with contextlib.ExitStack() as stack:  # undone in reverse: output, sampler, run, view
        stack.callback(close_view)
        writer.start()
        stack.push(close_run)
        recorder.start(_facts(options, cwd, env, settings, masker))
        sampler.start()
        stack.callback(sampler.stop)
        stack.callback(fork.close)
        try:
            if options.retry is not None and options.retry.count:
                from stepflow.run.attempts import run_attempts

                outcome = run_attempts(options.retry, supervisor, fork, recorder)
            else:
                outcome = supervisor.run(fork)
        except (CommandNotFoundError, CommandNotExecutableError) as exc:
            error = exc
            outcome = Outcome(returncode=exc.exit_status, exit_status=exc.exit_status)
            state.errors.append(str(exc))
    assert outcome is not None  # set by supervisor.run or its except clause, else we raised
    # A run that failed must not tell a script it succeeded: a stop_on_error step failed and
    # the command still exited 0 (it finished first, or trapped the SIGTERM).
    status = outcome.exit_status or (ExitStatus.ERROR if state.status != "completed" else ExitStatus.OK)
    return RunResult(state.id, status, state, error, writer.written)


def _collect_from_now() -> None:
    """The command runs: turn the garbage collector back on if the CLI held it off for the
    start-up (stepflow.cli.main), with what the start-up made frozen, never to be traversed."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _spool(settings: Settings, run_id: str) -> Spool:
    """The run's spool, made when the store first refuses a batch (most runs never import it)."""
    from stepflow.store.spool import Spool

    return Spool(settings.spool_folders, run_id, max_bytes=settings.spool_max)


def _store_secrets(settings: Settings) -> list[str]:
    """The password of a store URL given (--database, STEPFLOW_DATABASE_URL): never stored or shown."""
    if settings.url is None:  # the default file: no URL module on the start-up path
        return []
    from stepflow.store.url import url_secrets

    return list(url_secrets(settings.url.text))


def _supervisor(options: RunOptions) -> type[Supervisor]:
    if not options.pty:
        return Supervisor
    from stepflow.run.pty import PtySupervisor

    return PtySupervisor


def _stored(options: RunOptions, splitter: LineSplitter) -> LineSplitter:
    """What the store reads: under --pty, the text without the terminal's escapes."""
    if not options.pty:
        return splitter
    from stepflow.run.pty import Stripped

    return Stripped(splitter)  # type: ignore[return-value]


def _writer_settings(settings: Settings) -> Settings:
    """A run's writer waits briefly for the write lock, then spools: no run waits on the store."""
    from stepflow.record import replace

    return replace(settings, busy_timeout_ms=min(settings.busy_timeout_ms, WRITER_BUSY_MS))


def _facts(options: RunOptions, cwd: str, env: dict[str, str], settings: Settings,
           masker: Masker) -> dict[str, object]:
    """Who runs what where, stored with the run (events.RunStarted.facts)."""
    return {
        "working_directory": valid_text(cwd), "tags": [masker.mask_text(valid_text(t)) for t in options.tags],
        "user_name": _user(),
        "host": settings.host or os.uname().nodename, "pid": os.getpid(),
        "pid_started": procs.start_time(os.getpid()),
        "metadata": {valid_text(k): masker.mask_text(valid_text(v)) for k, v in options.metadata.items()},
        "environment": _environment(env, settings.env_allow, masker),
    }


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP during the last writes (bounded by the busy timeout)."""
    caught: list[int] = []
    previous = {sig: signals.signal(sig, lambda s, _f: caught.append(s)) for sig in FORWARDED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signals.signal(sig, handler)
    if caught and caught[0] == signals.SIGINT:
        raise KeyboardInterrupt


def _environment(env: dict[str, str], allow: tuple[str, ...], masker: Masker) -> dict[str, str | None]:
    """Variable names only (values are where secrets live), but values of allow-listed names."""
    allowed = matching(env, allow)
    return {valid_text(k): masker.mask_text(valid_text(allowed[k])) if k in allowed else None for k in sorted(env)}


def _user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None

"""One `stepflow run`: wire the runner, the line splitter, the recorder, the writer and the view."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from stepflow import procs, resources
from stepflow.config import Settings
from stepflow.errors import CommandNotExecutableError, CommandNotFoundError, ExitStatus, StepflowError
from stepflow.fmt import valid_text
from stepflow.lines import LineSplitter
from stepflow.recorder import Recorder, View, new_id
from stepflow.resources import Sampler
from stepflow.runner import FORWARDED, Outcome, Supervisor
from stepflow.secrets import Masker, matching
from stepflow.state import RunState
from stepflow.store import open_store
from stepflow.store.url import url_secrets
from stepflow.writer import Writer, Written

INTERPRETERS = frozenset({"bash", "sh", "zsh", "dash", "ksh", "python", "python3", "node", "perl",
                          "ruby", "env", "sudo", "nice", "nohup", "time"})


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What `stepflow run` was asked to do."""

    argv: list[str]
    name: str | None = None
    tags: tuple[str, ...] = ()
    cwd: str | None = None
    timeout: float | None = None
    kill_grace: float = 5.0
    anywhere: bool = False
    stderr_markers: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    masks: tuple[str, ...] = ()  # --mask values, hidden like secrets from the environment
    env: dict[str, str] | None = None  # the command's environment (default: stepflow's own)


@dataclass(slots=True)
class RunResult:
    run_id: str
    exit_status: int
    state: RunState
    error: StepflowError | None = None  # the command could not be started
    written: Written | None = None  # what reached the store (for STEPFLOW_LOG_LEVEL=debug)


def default_name(argv: list[str]) -> str:
    """`bash deploy.sh --prod` is "deploy.sh"; `make test` is "make"."""
    words = [os.path.basename(a) for a in argv if a and not a.startswith("-")]
    for word in words:
        if word.rstrip("0123456789.") not in INTERPRETERS:
            return word
    return words[0] if words else "run"


def execute(options: RunOptions, settings: Settings, view: View) -> RunResult:
    """Run the command to its end, recording it; the command's exit status is the result's.

    Never raises because of the store: problems go to `view.problem` and the run goes on.
    """
    cwd = os.path.abspath(options.cwd or os.getcwd())
    started = time.time()
    env = dict(os.environ if options.env is None else options.env)
    masker = Masker([*options.masks, *matching(env, settings.mask_env).values(),
                     *url_secrets(settings.database_url.text)])  # the store's password, never stored
    # What is stored and shown is text; arguments, folders and names may hold bytes that are
    # not UTF-8 (the command itself still gets them exactly as given).
    state = RunState(id=new_id(), name=masker.mask_text(valid_text(options.name or default_name(options.argv))),
                     command=masker.mask_text(valid_text(shlex.join(options.argv))), started=started)
    writer = Writer(lambda: open_store(settings, appending=True), buffer_size=settings.buffer_size,
                    # at STEPFLOW_LOG_LEVEL=error only losses are told, at the end
                    on_problem=view.problem if settings.log_level != "error" else lambda _m: None)
    supervisor = Supervisor(options.argv, on_output=lambda s, d: None, cwd=cwd, env=options.env,
                            timeout=options.timeout, kill_grace=options.kill_grace)
    recorder = Recorder(state, writer, view, artifacts_dir=settings.artifacts,
                        artifact_max_size=settings.artifact_max_size, cwd=cwd,
                        on_critical_failure=supervisor.request_stop)
    splitter = LineSplitter(recorder, max_line=settings.max_line, anywhere=options.anywhere,
                            marker_streams=frozenset({1, 2} if options.stderr_markers else {1}),
                            masker=masker)

    gone: set[int] = getattr(view, "gone", set())

    def on_output(stream: int, data: bytes) -> None:
        view.raw(stream, masker.filter(stream, data))
        splitter.feed(stream, data)
        if gone and stream in gone:
            # Whoever read our output has gone (`stepflow run -- yes | head -1`): close the
            # command's pipe too, so it gets SIGPIPE as it would in the same pipeline alone.
            supervisor.close_stream(stream)

    supervisor.on_output = on_output
    attach = getattr(view, "attach", None)
    if attach is not None:  # the live view: ETA hints from earlier runs, read on its own thread
        from stepflow.hints import load_hints

        attach(hints=lambda: load_hints(settings, state.name), artifacts=settings.artifacts / state.id)
    sampler = Sampler(state, lambda: supervisor.pid)
    writer.start()
    recorder.start({
        "working_directory": valid_text(cwd), "tags": [masker.mask_text(valid_text(t)) for t in options.tags],
        "user_name": _user(),
        "host": settings.host or os.uname().nodename, "pid": os.getpid(),
        "pid_started": procs.start_time(os.getpid()),
        "metadata": {valid_text(k): masker.mask_text(valid_text(v)) for k, v in options.metadata.items()},
        "environment": _environment(env, settings.env_allow, masker),
    })
    error: StepflowError | None = None
    sampler.start()
    try:
        outcome = supervisor.run()
    except (CommandNotFoundError, CommandNotExecutableError) as exc:
        error = exc
        outcome = Outcome(returncode=exc.exit_status, exit_status=exc.exit_status)
        state.errors.append(str(exc))
    finally:
        sampler.stop()
        for stream in (1, 2):
            if held := masker.flush(stream):
                view.raw(stream, held)
        splitter.close()
    resources.settle(state, outcome.cpu_seconds)
    with _signals_deferred():  # the command is gone: an impatient Ctrl-C must not lose its record
        recorder.finish(outcome)
        losses = writer.close()
    state.lost_lines = losses.lines
    view.finish(state)
    if losses:
        view.problem(
            f"run {state.id[:8]} not fully recorded: {losses.lines} output lines and"
            f" {losses.writes} step/run updates lost ({losses.reason})"
        )
    # A run that failed must not tell a script it succeeded: a stop_on_error step failed and
    # the command still exited 0 (it finished first, or trapped the SIGTERM).
    status = outcome.exit_status or (ExitStatus.ERROR if state.status != "completed" else ExitStatus.OK)
    return RunResult(state.id, status, state, error, writer.written)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP during the last writes (bounded by the busy timeout)."""
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, _f: caught.append(s)) for sig in FORWARDED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught and caught[0] == signal.SIGINT:
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



"""`run --ci`: a sink that prints stepflow's steps in the language of the CI the run is under.

The lines go to stderr, where plain output puts stepflow's own lines: every CI we speak
(GitHub Actions, GitLab, Buildkite, TeamCity) reads both streams into its job log, and the
command's stdout stays byte for byte what it wrote. Under GitHub Actions the run's steps are
also appended to `$GITHUB_STEP_SUMMARY` as a Markdown table when it is set.

Built only when a CI is active (`ci_sink`): the emitter modules are imported then, never on a
plain run outside CI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stepflow import events as ev

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)

if TYPE_CHECKING:
    from stepflow.ci import Emitter, StepFinished
    from stepflow.dialects.base import Dialect, Marker

SUMMARY_ROWS = 1000  # a run of a million steps must not write a million-row summary


class CiSink:
    """Prints the emitter's lines for each step start and end, and the run's end."""

    def __init__(self, emitter: Emitter, *, err_fd: int = 2, summary_path: str | None = None,
                 on_problem: Callable[[str], None] = lambda _m: None) -> None:
        self.emitter = emitter
        self.err_fd = err_fd
        self.summary_path = summary_path
        self.on_problem = on_problem
        self.finished: list[StepFinished] = []
        self.more_steps = 0
        self.gone = False
        self.native_starts = 0  # steps the command opened in the CI's own language, not yet started
        self.silent: set[str] = set()  # ... and started: the CI has their lines already

    def reading(self, readers: list[Dialect]) -> list[Dialect]:
        """`readers` with the CI's own dialect (if read) telling this sink which steps the command
        opened in that language itself: printing those again would show each group twice."""
        return [NativeReader(d, self) if d.name == self.emitter.name else d for d in readers]  # type: ignore[misc]  # a Dialect by duck typing (__getattr__)

    def handle(self, event: ev.Event) -> None:
        from stepflow.ci import RunFinished, StepBegan, StepFinished

        match event:
            case ev.StepStarted(_, step):
                if self.native_starts:
                    self.native_starts -= 1
                    self.silent.add(step.id)
                    return
                self._print(self.emitter.step_started(StepBegan(step.name, step.index + 1, step.started)))
            case ev.StepEnded(_, step, status, error):
                done = StepFinished(step.name, step.index + 1, status, step.ended or step.started,
                                    step.duration, error)
                if len(self.finished) < SUMMARY_ROWS:
                    self.finished.append(done)
                else:
                    self.more_steps += 1
                if step.id in self.silent:
                    self.silent.discard(step.id)
                    return
                self._print(self.emitter.step_ended(done))
            case ev.RunFinished(run, exit_code):
                end = RunFinished(run.status, exit_code, run.ended or run.started,
                                  None if run.ended is None else run.ended - run.started)
                self._print(self.emitter.run_finished(end))
                if self.summary_path:
                    self._summarize(run.name, end)
            case _:
                return

    def _print(self, lines: list[str]) -> None:
        if not lines or self.gone:
            return
        from stepflow.views.plain import write_all

        try:
            write_all(self.err_fd, ("\n".join(lines) + "\n").encode("utf-8", "replace"))
        except OSError:
            self.gone = True  # whoever read stderr has gone: the run goes on

    def _summarize(self, title: str, end: object) -> None:
        from stepflow.ci.github import step_summary

        text = step_summary(self.finished, end, title=title)  # type: ignore[arg-type]
        if self.more_steps:
            text += f"\n({self.more_steps} more steps not shown)\n"
        assert self.summary_path is not None
        try:
            with open(self.summary_path, "a", encoding="utf-8") as out:
                out.write(text + "\n")
        except OSError as exc:
            self.on_problem(f"step summary not written to {self.summary_path}: {exc.strerror or exc}")


class NativeReader:
    """A dialect as it is, but that counts the steps it opens for `CiSink.native_starts`."""

    def __init__(self, dialect: Dialect, sink: CiSink) -> None:
        self._dialect = dialect
        self._sink = sink
        self.name = dialect.name
        self.needles = dialect.needles

    def __getattr__(self, attr: str) -> object:  # `gate` and whatever else the dialect has
        return getattr(self._dialect, attr)

    def parse(self, line: str) -> list[Marker]:
        from stepflow.dialects.base import StepStart

        markers = self._dialect.parse(line)
        self._sink.native_starts += sum(isinstance(m, StepStart) for m in markers)
        return markers


def ci_sink(option: str, env: Mapping[str, str], *, on_problem: Callable[[str], None]) -> CiSink | None:
    """The sink `--ci option` asks for under `env`, None for none (or auto outside a CI).

    Raises:
        UsageError: an unknown --ci value.
    """
    value = option.strip().lower()
    if value == "none" or (value == "auto" and not _in_ci(env)):
        return None  # the common case, decided without importing stepflow.ci
    from stepflow.ci import load_emitter, resolve_ci
    from stepflow.errors import UsageError

    try:
        name = resolve_ci(option, env)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if name is None:
        return None
    summary = env.get("GITHUB_STEP_SUMMARY") if name == "github" else None
    return CiSink(load_emitter(name)(), summary_path=summary or None, on_problem=on_problem)


def _in_ci(env: Mapping[str, str]) -> bool:
    from stepflow.dialects import detect_ci

    return detect_ci(env) is not None


__all__ = ["CiSink", "ci_sink"]

"""What `stepflow run` is asked to do (RunOptions) and what it gives back (RunResult)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from stepflow.errors import StepflowError, UsageError
from stepflow.record import field, record

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)

if TYPE_CHECKING:
    from stepflow.cron.retry import RetryPolicy
    from stepflow.dialects.base import Dialect
    from stepflow.run.writer import Written
    from stepflow.state import RunState

INTERPRETERS = frozenset({"bash", "sh", "zsh", "dash", "ksh", "python", "python3", "node", "perl",
                          "ruby", "env", "sudo", "nice", "nohup", "time"})


@record(frozen=True)
class RunOptions:
    """What `stepflow run` was asked to do."""

    argv: list[str]
    name: str | None = None
    tags: tuple[str, ...] = ()
    cwd: str | None = None
    timeout: float | None = None
    kill_grace: float = 5.0
    markers: str = "auto"  # --markers: auto, start, anywhere or dialect names, comma separated
    anywhere: bool = False  # kept for library callers: the same as markers="anywhere"
    stderr_markers: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    masks: tuple[str, ...] = ()  # --mask values, hidden like secrets from the environment
    env: dict[str, str] | None = None  # the command's environment (default: stepflow's own)
    ci: str = "auto"  # --ci: none, auto or an emitter name (stepflow.run.ci_sink)
    pty: bool = False  # --pty: the command's output goes through a pseudo-terminal (stepflow.run.pty)
    run_id: str | None = None  # chosen before the run (the --lock holder names it); default: a new one
    retry: RetryPolicy | None = None  # --retry: attempts of this one run (stepflow.run.attempts)


@record
class RunResult:
    run_id: str
    exit_status: int
    state: RunState
    error: StepflowError | None = None  # the command could not be started
    written: Written | None = None  # what reached the store (for STEPFLOW_LOG_LEVEL=debug)


SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh"})
# Words of a `sh -c` script that say nothing of what it does.
SCRIPT_NOISE = frozenset({"set", "cd", "export", "trap", "echo", "printf", "read", "exec", "source", ".",
                          "if", "then", "else", "fi", "for", "while", "do", "done", "true", ":", "sleep",
                          "time", "env", "sudo", "nice", "nohup", "!", "{", "}", "(", ")", "local", "umask",
                          "wait", "exit", "return", "shift", "unset", "test", "[", "[["})
PREFIX_WORDS = frozenset({"exec", "if", "then", "else", "do", "!", "{", "(", "time", "env", "sudo", "nice",
                          "nohup"})
NAME_MAX = 40


def default_name(argv: list[str]) -> str:
    """`bash deploy.sh --prod` is "deploy.sh"; `make test` is "make"; `sh -c 'cd /srv &&
    ./deploy.sh'` is "deploy.sh" (the script's first command that is not cd, set, echo...)."""
    if len(argv) > 2 and os.path.basename(argv[0]) in SHELLS and "-c" in argv[1:-1]:
        return _script_name(argv[argv.index("-c", 1) + 1]) or os.path.basename(argv[0])
    words = [os.path.basename(a) for a in argv if a and not a.startswith("-")]
    for word in words:
        if word.rstrip("0123456789.") not in INTERPRETERS:
            return word
    return words[0] if words else "run"


def _script_name(script: str) -> str | None:
    """The first command of a shell script, by its file name (`./deploy.sh`, `make`), skipping
    builtins and interpreters; else the script's start. At most NAME_MAX characters."""
    import shlex

    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    command_start = True
    try:
        for word in lexer:
            if word and set(word) <= set(";&|()<>"):
                command_start = True
                continue
            if not command_start or "=" in word.split("/")[0] or word.startswith("-"):
                continue  # arguments; VAR=value before a command; an interpreter's options
            if word in SCRIPT_NOISE:
                command_start = word in PREFIX_WORDS  # `exec make`, `then make`: a command follows
                continue
            if word.rstrip("0123456789.") in INTERPRETERS:
                continue  # `python3 train.py` is train.py
            return (os.path.basename(word.rstrip("/")) or word)[:NAME_MAX]
    except ValueError:  # an unfinished quote
        pass
    first = " ".join(script.split())
    return first if len(first) <= NAME_MAX else first[: NAME_MAX - 1] + "…"


def dialects(markers: str, *, anywhere: bool = False, env: Mapping[str, str] | None = None) -> list[Dialect]:
    """The dialect objects `--markers` names, for one run (see dialects.select_markers: `auto`
    reads stepflow markers plus the dialect of the CI that `env` names).

    Raises:
        UsageError: a word that is no dialect, or a dialect whose module is not installed.
    """
    from stepflow.dialects import select_markers

    try:
        chosen = select_markers(markers, os.environ if env is None else env)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    found: list[Dialect] = []
    for name in chosen.names:
        if name == "stepflow":
            from stepflow.dialects.stepflow import StepflowDialect

            found.append(StepflowDialect(anywhere=anywhere or chosen.anywhere))
            continue
        from stepflow.dialects import load

        try:
            found.append(load(name)())
        except (ImportError, AttributeError) as exc:
            raise UsageError(f"--markers {name!r}: the dialect cannot be loaded ({exc})") from None
    return found

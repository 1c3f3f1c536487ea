"""Errors that reach users, and the exit statuses stepflow uses."""

import os


class ExitStatus:
    """Every exit status stepflow itself chooses; a wrapped command's own status passes through.

    Plain ints, not an IntEnum: `enum` costs ~4 ms of every run's start-up (issue 17), and
    nothing needs a status's name.
    """

    OK = 0
    ERROR = 1  # a stepflow command failed (store unreadable, run not found, unhealthy)
    USAGE = 2  # bad flags or a bad setting, as click/typer and POSIX tools use it
    TIMEOUT = 124  # --timeout expired, as timeout(1) reports it
    CANNOT_EXECUTE = 126  # the command exists but cannot be run (permissions, not a binary)
    NOT_FOUND = 127  # the command does not exist, as the shell reports it
    SIGNAL_BASE = 128  # 128+N: the command was killed by signal N
    CTRL_C = 130  # 128+SIGINT: the user interrupted stepflow


def describe_os_error(exc: OSError) -> str:
    """An OS failure in words, naming the file: `permission denied: /x/y` (no exception repr)."""
    text = (exc.strerror or str(exc) or type(exc).__name__).lower()
    name = exc.filename
    return f"{text}: {os.fsdecode(name)}" if name is not None else text


class StepflowError(Exception):
    """An error with a message meant for users; the CLI prints it and exits with `exit_status`."""

    exit_status: int = ExitStatus.ERROR


class SettingsError(StepflowError):
    """A setting (flag or STEPFLOW_* variable) has a value stepflow cannot use."""

    exit_status = ExitStatus.USAGE


class UsageError(StepflowError):
    """The command line asks for something that cannot be done as asked."""

    exit_status = ExitStatus.USAGE


class StoreError(StepflowError):
    """The store cannot be opened, read or written."""


class StoreLockedError(StoreError):
    """Another process holds the database longer than the busy timeout."""


class NotFoundError(StepflowError):
    """No run matches the id, prefix or name the user gave."""


class CommandNotFoundError(StepflowError):
    """The wrapped command does not exist."""

    exit_status = ExitStatus.NOT_FOUND


class CommandNotExecutableError(StepflowError):
    """The wrapped command exists but cannot be executed."""

    exit_status = ExitStatus.CANNOT_EXECUTE

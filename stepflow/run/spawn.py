"""Start a process the way subprocess.Popen would, through posix_spawn.

`subprocess` costs ~4 ms to import here (it brings `locale` and `re`), and Popen forks the
whole Python process; glibc's posix_spawn starts the child with a vfork-like clone. Every
wrapped command pays both (issue 17), so the run's command and its watchdog start here.

The child gets what Popen(..., process_group=0, close_fds=True, restore_signals=True) gives
it: its own process group, no descriptor of ours but its stdio, SIGPIPE and SIGXFSZ back to
their defaults (Python ignores them). Where posix_spawn cannot do what Popen does in one step
(another working directory; a PATH in `env` other than ours, which Popen searches), it is
Popen that starts the child.
"""

from __future__ import annotations

import os

from stepflow.run import signals

PIPE = -1  # a new pipe: the child writes, the caller reads the returned fd
DEVNULL = -3  # /dev/null

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_DEFAULT_SIGNALS = (signals.SIGPIPE, signals.SIGXFSZ)  # Popen's restore_signals (Linux has no SIGXFZ)


class _Closed(Exception):
    """A standard descriptor of ours is closed (see spawn)."""


class Child:
    """A started process: its pid and the read ends of the pipes asked for (None otherwise)."""

    __slots__ = ("pid", "stdout", "stderr")

    def __init__(self, pid: int, stdout: int | None, stderr: int | None) -> None:
        self.pid, self.stdout, self.stderr = pid, stdout, stderr


def spawn(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
    stdin: int | None = None, stdout: int | None = None, stderr: int | None = None,
    new_session: bool = False,
) -> Child:
    """Start `argv` in a new process group (or session): stdio each None (ours), PIPE, DEVNULL
    or a descriptor to give it. The caller reaps it (os.waitpid / os.wait4).

    Raises:
        FileNotFoundError, PermissionError, OSError: as Popen raises them; nothing was started.
    """
    if not _posix_spawn_can(env, cwd):
        return _popen(argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr, new_session=new_session)
    ours: list[int] = []  # descriptors made here: closed in this process once the child has its copies
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = []
    read_ends: dict[int, int] = {}
    try:
        for target, spec in ((0, stdin), (1, stdout), (2, stderr)):
            if spec is None:
                continue
            if spec == PIPE:
                r, w = os.pipe()
                ours += [r, w]
                if min(r, w) <= 2:  # we were started with stdio closed: let Popen sort the descriptors out
                    raise _Closed
                read_ends[target] = r
                actions.append((os.POSIX_SPAWN_DUP2, w, target))
            elif spec == DEVNULL:
                actions.append((os.POSIX_SPAWN_OPEN, target, os.devnull, os.O_RDWR, 0))
            else:
                actions.append((os.POSIX_SPAWN_DUP2, spec, target))
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()]
        group = {"setsid": True} if new_session else {"setpgroup": 0}
        pid = os.posix_spawnp(argv[0], list(argv), os.environ if env is None else env, file_actions=actions,
                              setsigdef=_DEFAULT_SIGNALS, **group)  # type: ignore[arg-type]
    except _Closed:
        for fd in ours:
            os.close(fd)
        return _popen(argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr, new_session=new_session)
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    for fd in ours:
        if fd not in read_ends.values():
            os.close(fd)
    return Child(pid, read_ends.get(1), read_ends.get(2))


def _posix_spawn_can(env: Mapping[str, str] | None, cwd: str | None) -> bool:
    if cwd is not None and os.path.abspath(cwd) != os.getcwd():
        return False  # no chdir action before Python 3.13's os.posix_spawn... and not in glibc's API here
    return env is None or env.get("PATH") == os.environ.get("PATH")  # posix_spawnp searches our PATH


def _inherited_fds() -> list[int]:
    """Our inheritable descriptors above stderr (from whoever started us): Popen closes them."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    found = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:
                continue  # the listing's own descriptor, closed by now
    return found


def _popen(argv: Sequence[str], *, env: Mapping[str, str] | None, cwd: str | None, stdin: int | None,
           stdout: int | None, stderr: int | None, new_session: bool) -> Child:
    import subprocess

    proc = subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd, env=env, bufsize=0,
                            process_group=None if new_session else 0, start_new_session=new_session)
    proc.returncode = 0  # reaped by the caller: Popen must never wait for it (nor warn at exit)
    return Child(proc.pid, _keep(proc.stdout), _keep(proc.stderr))


def _keep(pipe: object) -> int | None:
    """The pipe's descriptor, kept open when Popen's file object is closed."""
    if pipe is None:
        return None
    fd = os.dup(pipe.fileno())  # type: ignore[attr-defined]
    pipe.close()  # type: ignore[attr-defined]
    return fd

"""The signal numbers and calls a run uses, without the enum wrappers of `signal` (issue 17).

signal.py makes every constant an IntEnum member and wraps what its functions return, which
costs importing `enum` (~4 ms of a run's start-up here). Its functions are the C module
`_signal`'s; a run only passes signal numbers around, so it calls those directly (and falls
back to `signal` on a Python without `_signal`).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from signal import (
        SIG_BLOCK,
        SIG_DFL,
        SIG_IGN,
        SIG_SETMASK,
        SIGCHLD,
        SIGCONT,
        SIGHUP,
        SIGINT,
        SIGKILL,
        SIGPIPE,
        SIGTERM,
        SIGTTOU,
        SIGWINCH,
        SIGXFSZ,
        pthread_sigmask,
        set_wakeup_fd,
        signal,
    )
else:
    try:
        from _signal import (
            SIG_BLOCK,
            SIG_DFL,
            SIG_IGN,
            SIG_SETMASK,
            SIGCHLD,
            SIGCONT,
            SIGHUP,
            SIGINT,
            SIGKILL,
            SIGPIPE,
            SIGTERM,
            SIGTTOU,
            SIGWINCH,
            SIGXFSZ,
            pthread_sigmask,
            set_wakeup_fd,
            signal,
        )
    except ImportError:  # pragma: no cover - CPython has _signal on every platform stepflow runs on
        from signal import (
            SIG_BLOCK,
            SIG_DFL,
            SIG_IGN,
            SIG_SETMASK,
            SIGCHLD,
            SIGCONT,
            SIGHUP,
            SIGINT,
            SIGKILL,
            SIGPIPE,
            SIGTERM,
            SIGTTOU,
            SIGWINCH,
            SIGXFSZ,
            pthread_sigmask,
            set_wakeup_fd,
            signal,
        )

__all__ = ["SIG_BLOCK", "SIG_DFL", "SIG_IGN", "SIG_SETMASK", "SIGCHLD", "SIGCONT", "SIGHUP", "SIGINT", "SIGKILL",
           "SIGPIPE", "SIGTERM", "SIGTTOU", "SIGWINCH", "SIGXFSZ", "pthread_sigmask", "set_wakeup_fd", "signal"]

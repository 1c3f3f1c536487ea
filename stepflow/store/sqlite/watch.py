"""Change notification for SQLite: PRAGMA data_version, polled once for every waiter.

data_version changes when another connection commits (the file's mtime does not move while
commits go to the WAL). The Watch owns one read-only connection of its own, so commits by
this process's other connections count too. Many threads (a server's clients) may wait at
once: one of them polls at a time and wakes the others; there is never one poll per waiter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import apsw

POLL = 0.15  # seconds between looks at data_version while someone waits


class SqliteWatch:
    """A `Watch` (stepflow.store.base) over one SQLite database."""

    def __init__(self, connect: Callable[[], apsw.Connection], *, poll: float = POLL) -> None:
        self._connect = connect
        self._conn: apsw.Connection | None = None
        self._poll = poll
        self._cond = threading.Condition()
        self._seq = 0
        self._version: object = None
        self._polling = False

    def _look(self) -> None:
        """Read data_version; a change moves the cursor. Called with the lock released."""
        with self._cond:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
        version = conn.execute("PRAGMA data_version").fetchall()[0][0]
        with self._cond:
            if self._version is not None and version != self._version:
                self._seq += 1
            self._version = version

    def cursor(self) -> int:
        """Where the database is now; commits after this call move the cursor past it."""
        with self._cond:
            if self._version is not None:
                return self._seq
        self._look()
        with self._cond:
            return self._seq

    def wait(self, cursor: int, timeout: float) -> int:
        """A cursor past `cursor` once something was committed after it, else `cursor` after `timeout`."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while self._seq == cursor:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self._polling:  # another waiter polls: it wakes everyone when it has looked
                    self._cond.wait(left)
                    continue
                self._polling = True
                self._cond.release()
                try:
                    time.sleep(min(self._poll, left))
                    self._look()
                finally:
                    self._cond.acquire()
                    self._polling = False
                    self._cond.notify_all()
            return self._seq

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

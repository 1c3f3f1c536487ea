"""Change notification for PostgreSQL: LISTEN on one connection per Watch, shared by every waiter.

Every writing transaction (PostgresStore.write, mark_abandoned, delete_runs) NOTIFYs
CHANNEL; the server delivers it when that transaction commits, to every session listening.
A waiter blocks in select() on the listening socket: no polling, no query per wake. As in
SQLiteWatch, one waiter at a time reads the socket and wakes the others.

A lost connection (the server restarted) moves the cursor, so followers read again and see
for themselves; the next wait connects anew.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable

import psycopg

from stepflow.errors import StepflowError
from stepflow.store.postgres.connection import CHANNEL

RECONNECT_DELAY = 1.0  # seconds between tries to listen again after the connection was lost


class PostgresWatch:
    """A `Watch` (stepflow.store.base) over one PostgreSQL database."""

    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self._connect = connect
        self._conn: psycopg.Connection | None = None
        self._cond = threading.Condition()
        self._seq = 0
        self._reading = False
        self._retry_at = 0.0
        self._missed = False  # not listening for a while: commits may have gone unheard

    def _listen(self) -> psycopg.Connection | None:
        """The listening connection, made if needed; None while the server cannot be reached."""
        if self._conn is not None:
            return self._conn
        if time.monotonic() < self._retry_at:
            return None
        conn = None
        try:
            conn = self._connect()
            conn.execute(f"LISTEN {CHANNEL}")
        except (psycopg.Error, StepflowError):
            if conn is not None:
                conn.close()
            self._retry_at = time.monotonic() + RECONNECT_DELAY
            self._missed = True
            return None
        self._conn = conn
        if self._missed:  # listening again: whatever happened meanwhile counts as a change
            self._missed = False
            self._seq += 1
        return conn

    def cursor(self) -> int:
        """Where the database is now; commits after this call move the cursor past it."""
        with self._cond:
            self._listen()  # listening from here on: a later commit is heard
            return self._seq

    def _read(self, conn: psycopg.Connection | None, timeout: float) -> None:
        """Wait up to `timeout` for notifications on `conn`; any (or a lost connection) moves the cursor."""
        if conn is None:
            time.sleep(min(timeout, RECONNECT_DELAY))
            return
        pgconn = conn.pgconn
        try:
            ready, _, _ = select.select([pgconn.socket], [], [], timeout)
            if not ready:
                return
            pgconn.consume_input()
            heard = 0
            while pgconn.notifies() is not None:
                heard += 1
            lost = pgconn.status != psycopg.pq.ConnStatus.OK
        except (psycopg.Error, OSError, ValueError):
            heard, lost = 0, True
        with self._cond:
            if heard or lost:
                self._seq += 1
            if lost:
                self._drop()

    def wait(self, cursor: int, timeout: float) -> int:
        """A cursor past `cursor` once something was committed after it, else `cursor` after `timeout`."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while self._seq == cursor:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self._reading:  # another waiter reads the socket: it wakes everyone
                    self._cond.wait(left)
                    continue
                conn = self._listen()
                if self._seq != cursor:  # listening again after a gap: that already counts
                    break
                self._reading = True
                self._cond.release()
                try:
                    self._read(conn, left)
                finally:
                    self._cond.acquire()
                    self._reading = False
                    self._cond.notify_all()
            return self._seq

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None
            self._missed = True

    def close(self) -> None:
        with self._cond:
            self._drop()

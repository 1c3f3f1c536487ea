"""Connect to PostgreSQL through psycopg 3, with bounds that keep a slow server from holding anyone up.

The URL (or libpq conninfo) goes to libpq unchanged, so PGPASSFILE, PGSERVICE, sslmode,
sslrootcert, target_session_attrs and every other libpq setting work as in psql. stepflow only
adds what libpq leaves unbounded: how long to wait for a connection and for a statement.

Every failure becomes a StoreError naming the database with its password masked; the password
itself never reaches a message, even when a libpq message quotes it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping

import psycopg
from psycopg import errors as pg_errors

from stepflow.errors import StoreError, StoreLockedError
from stepflow.record import record
from stepflow.store.url import DatabaseURL, mask_password

CHANNEL = "stepflow_changes"  # NOTIFY'd in every writing transaction; a Watch LISTENs on it


@record(frozen=True)
class Bounds:
    """How long a connection may take, in seconds (0: no bound)."""

    connect: int  # libpq connect_timeout (libpq waits at least 2 s whatever is asked)
    statement: float  # server-side statement_timeout
    lock: float  # lock_timeout: a write waiting for a row lock gives up
    idle_in_transaction: float  # the server drops a session that holds a transaction open
    # The client cuts the connection when a call waits longer for the server (0: never). A
    # frozen server (SIGSTOP, a hung VM, a stalled disk) keeps its sockets open and answers
    # nothing: statement_timeout is its own clock, and its kernel still answers keepalives.
    answer: float = 0.0


# The run's writer: a server that is down or slow must not hold up the command; the writer
# keeps the batch and retries (stepflow.writer), so each try is short.
WRITER = Bounds(connect=3, statement=5.0, lock=2.0, idle_in_transaction=10.0, answer=6.0)
# ls, show, logs, health, db ...: a person or a probe is waiting.
READER = Bounds(connect=5, statement=30.0, lock=5.0, idle_in_transaction=60.0, answer=35.0)
# Keepalives and an unacknowledged-send bound, so a silent network is noticed in ~10 s.
NETWORK = {"keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "2", "keepalives_count": "2",
           "tcp_user_timeout": "10000"}


def libpq_conninfo(url: DatabaseURL) -> str:
    """What libpq is given: the URL as typed, with a SQLAlchemy-style driver suffix dropped."""
    text = url.text.strip()
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower().startswith("postgresql+"):
        return "postgresql://" + rest
    return text


def _password(conninfo: str) -> str | None:
    try:
        return psycopg.conninfo.conninfo_to_dict(conninfo).get("password")  # type: ignore[return-value]
    except psycopg.Error:
        return None


def scrub(message: str, url: DatabaseURL) -> str:
    """`message` without the URL's password, on one line."""
    text = " ".join(mask_password(message).split())
    password = _password(libpq_conninfo(url))
    if password:
        text = text.replace(password, "***")
    return text


def store_error(exc: BaseException, url: DatabaseURL) -> StoreError:
    """A psycopg failure as a StoreError naming the (masked) database."""
    if isinstance(exc, pg_errors.QueryCanceled):
        reason = "the server did not answer in time (statement timeout)"
    elif isinstance(exc, pg_errors.LockNotAvailable):
        reason = "rows are locked by another session"
    elif isinstance(exc, psycopg.OperationalError) and "timeout expired" in str(exc):
        reason = "cannot connect: the server did not answer in time (connect_timeout)"
    else:
        reason = str(exc).strip() or type(exc).__name__
    cls = StoreLockedError if isinstance(exc, pg_errors.LockNotAvailable) else StoreError
    return cls(f"store {url}: {scrub(reason, url)}")


def _given(given: Mapping[str, object], key: str, env: Mapping[str, str], env_name: str) -> bool:
    """Whether the user set `key` themselves, in the URL or in libpq's environment variable."""
    return bool(env.get(env_name) or given.get(key))


def connect(url: DatabaseURL, bounds: Bounds, *, application: str = "stepflow") -> psycopg.Connection:
    """An autocommit connection with `bounds` applied (the user's own connect_timeout wins).

    Raises:
        StoreError: the server cannot be reached, refuses us, or the URL is not one libpq takes.
    """
    conninfo = libpq_conninfo(url)
    env = os.environ  # libpq's own variables (PGCONNECT_TIMEOUT...): libpq reads them anyway
    extra: dict[str, str] = {"client_encoding": "UTF8"}
    try:
        given = psycopg.conninfo.conninfo_to_dict(conninfo)
        if not _given(given, "application_name", env, "PGAPPNAME"):
            extra["application_name"] = application
        if not _given(given, "connect_timeout", env, "PGCONNECT_TIMEOUT"):
            extra["connect_timeout"] = str(bounds.connect)
        for key, value in NETWORK.items():
            if not _given(given, key, env, "PG" + key.upper()):
                extra[key] = value
        full = psycopg.conninfo.make_conninfo(conninfo, **extra)  # the user's settings kept as they are
        conn = psycopg.connect(full, autocommit=True, prepare_threshold=None)
    except psycopg.Error as exc:
        raise store_error(exc, url) from None
    try:
        # set_config, not the startup `options`: a pooler (PgBouncer) refuses unknown startup options.
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false),"
            " set_config('idle_in_transaction_session_timeout', %s, false)",
            [f"{int(s * 1000)}ms" for s in (bounds.statement, bounds.lock, bounds.idle_in_transaction)],
        )
    except psycopg.Error as exc:
        conn.close()
        raise store_error(exc, url) from None
    return conn


def usable(conn: psycopg.Connection) -> bool:
    """Whether `conn` can still take a statement (not closed, not broken by a lost server)."""
    return not conn.closed and conn.pgconn.status == psycopg.pq.ConnStatus.OK



class Watchdog:
    """Cuts a connection whose call goes unanswered for `seconds`: the blocked call then fails
    as for a lost server (psycopg.OperationalError), and the connection is made again next time.

    One thread per store, started on first use and woken only when idle, so a guarded call
    costs two lock round trips, not a thread (a Timer per batch cost a run 0.3 s in 1M lines).
    A transaction cut before its COMMIT was answered may still commit once the server wakes;
    its rows are keyed, so the batch retried or replayed is not stored twice.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._cond = threading.Condition()
        self._armed: tuple[int, float] | None = None  # (socket fd, deadline)
        self._idle = False
        self._closed = False
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def guard(self, conn: psycopg.Connection) -> Iterator[None]:
        """Cut `conn` if what runs inside has not had its answers in time (0 seconds: never)."""
        if not self.seconds:
            yield
            return
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="stepflow-pg-watchdog", daemon=True)
                self._thread.start()
            self._armed = (conn.pgconn.socket, time.monotonic() + self.seconds)
            if self._idle:
                self._cond.notify()
        try:
            yield
        finally:
            with self._cond:  # disarmed under the lock: never a cut after the block, the fd may be reused
                self._armed = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                if self._armed is None:
                    self._idle = True
                    self._cond.wait()
                    self._idle = False
                    continue
                fd, deadline = self._armed
                left = deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)  # a later arming only moves the deadline later: no need to wake
                    continue
                with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
                self._armed = None

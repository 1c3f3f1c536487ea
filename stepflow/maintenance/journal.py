"""Switch a database's journal mode (WAL <-> DELETE) without waiting long on other processes.

Changing the journal mode needs the database to itself for a moment. Each attempt waits at
most `attempt_ms` (readers that arrive meanwhile queue behind it, so keep it short), and the
attempts repeat until `wait` seconds have passed. The pragma's answer is checked: SQLite
answers with the mode in force, which is the old one when the switch did not happen.
"""

from __future__ import annotations

import time
from pathlib import Path

import apsw

from stepflow.errors import StoreError, StoreLockedError
from stepflow.store.connection import scalar, store_error

ATTEMPT_MS = 200
PAUSE = 0.05


def journal_mode(conn: apsw.Connection) -> str:
    return str(scalar(conn, "PRAGMA journal_mode")).lower()


def switch_journal_mode(
    conn: apsw.Connection, mode: str, db: Path, *, wait: float, attempt_ms: int = ATTEMPT_MS, busy_ms: int = 30000
) -> None:
    """Put `conn`'s database in journal mode `mode` ("wal" or "delete"), retrying until `wait`.

    The connection's busy timeout is `busy_ms` again afterwards.

    Raises:
        StoreLockedError: other connections kept the database busy for `wait` seconds.
        StoreError: SQLite refused the mode (e.g. WAL on a filesystem without shared memory).
    """
    deadline = time.monotonic() + wait
    answer = ""
    try:
        conn.setbusytimeout(attempt_ms)
        while True:
            try:
                answer = str(scalar(conn, f"PRAGMA journal_mode={mode}")).lower()
            except (apsw.BusyError, apsw.LockedError):
                answer = ""
            except apsw.Error as exc:
                raise store_error(exc, db) from exc
            if answer == mode:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(PAUSE)
    finally:
        conn.setbusytimeout(busy_ms)
    if answer:  # no error, yet the old mode: SQLite will not use this mode here
        raise StoreError(f"SQLite kept {db} in journal_mode={answer.upper()} when asked for {mode.upper()}")
    raise StoreLockedError(
        f"could not switch {db} to journal_mode={mode.upper()} within {wait:g} s:"
        " the database is busy in another process"
    )

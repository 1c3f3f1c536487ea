"""Shared fixtures: every test gets its own store folder; helpers run the real `stepflow`."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import apsw
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
REAL_LEGACY = ROOT.parent / "shared" / "legacy" / "real"  # stores the old server wrote; optional


@pytest.fixture(autouse=True)
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh store folder for each test, via STEPFLOW_STORAGE_PATH."""
    folder = tmp_path / "store"
    monkeypatch.setenv("STEPFLOW_STORAGE_PATH", str(folder))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))  # the spool's fallback folder, per test
    for name in list(os.environ):
        if name.startswith("STEPFLOW_") and name != "STEPFLOW_STORAGE_PATH":
            monkeypatch.delenv(name)
    return folder


@pytest.fixture
def db_path(storage: Path) -> Path:
    return storage / "database" / "stepflow.db"


StepflowRunner = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def stepflow() -> StepflowRunner:
    """Run the real CLI in a subprocess: stepflow("run", "--", "true") -> CompletedProcess (bytes)."""

    def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None,
            **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "stepflow", *args], capture_output=True, timeout=timeout,
            env=full_env, stdin=subprocess.DEVNULL, **kwargs,  # type: ignore[arg-type]
        )

    return run


def py(code: str) -> list[str]:
    """argv for a Python child running `code` (unbuffered, so output order is real)."""
    return [sys.executable, "-u", "-c", code]


def query(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Read the store as another process would, with a plain connection."""
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_for(predicate: Callable[[], bool], *, timeout: float = 20.0) -> bool:
    """Poll `predicate` until it holds; a store not created yet (apsw errors) counts as not yet."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except apsw.Error:
            pass
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A real tmpfs mounted at `folder` (e.g. "size=512k", "ro,size=64k"); skips without root."""
    folder.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """One real PostgreSQL server for the session (tests/pgserver.py), on a Unix socket only."""
    import itertools

    from pgserver import temporary_server

    try:
        with temporary_server("sfpg") as server:
            server.counter = itertools.count()  # type: ignore[attr-defined]
            yield server
    except RuntimeError as exc:
        pytest.skip(f"no PostgreSQL server for these tests: {exc}")


@pytest.fixture
def pg_url(pg_server: object) -> str:
    """A fresh, empty database on the session's server, as a postgresql:// URL."""
    return pg_server.create_database(f"t{next(pg_server.counter)}")  # type: ignore[attr-defined]

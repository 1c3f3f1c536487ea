"""Where runs are kept. The runner, the history library and the CLI see only `Store`.

`open_store` picks a backend by the database URL's scheme (BACKENDS); the protocol and its
value types are in stepflow.store.base and import no backend. SQLite, the default, lives in
stepflow.store.sqlite; a second backend (PostgreSQL, issue 13) adds one registry entry.
"""

from __future__ import annotations

from stepflow.errors import StoreError
from stepflow.store.base import (
    OPEN_STATUSES,
    RUN_STATUSES,
    STDERR,
    STDOUT,
    STREAM_NAMES,
    Artifact,
    Deleted,
    Health,
    LogBlock,
    LogLine,
    NewArtifact,
    NewRun,
    NewStep,
    Run,
    RunChange,
    RunOutcome,
    RunQuery,
    Step,
    StepChange,
    StepDuration,
    Store,
    Watch,
    Write,
)
from stepflow.store.url import DatabaseURL, mask_password, parse_url
from stepflow.typenames import Protocol

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)

if TYPE_CHECKING:  # config imports stepflow.store.url: no import of config here at run time
    from typing import Any

    from stepflow.config import Settings


class Backend(Protocol):
    """What a backend module offers the registry: open a store at a URL."""

    def __call__(
        self, url: DatabaseURL, settings: Settings, *, appending: bool = False, readonly: bool = False
    ) -> Store: ...


# scheme -> "module:function"; imported only when a store of that scheme is opened.
BACKENDS: dict[str, str] = {
    "sqlite": "stepflow.store.sqlite:open_sqlite",
    "postgresql": "stepflow.store.postgres:open_postgres",
}


def backend_for(url: DatabaseURL) -> Backend:
    """The open function registered for `url`'s scheme.

    Raises:
        StoreError: no backend knows this scheme.
    """
    target = BACKENDS.get(url.scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        raise StoreError(f"database {url}: no backend for {url.scheme}:// (known: {known})")
    module, _, name = target.partition(":")
    opener: Backend = getattr(__import__(module, fromlist=[name]), name)
    return opener


def open_store(
    settings: Settings, *, url: DatabaseURL | None = None, appending: bool = False, readonly: bool = False,
) -> Store:
    """Open (creating if the backend does) the store at `url` (default: the settings' database).

    `appending`: for a run's writer, which only adds rows (the backend may tune for it). `readonly`: change
    nothing, not even the schema (ETA hints, health).

    Raises:
        StoreError: unreadable, of a newer schema, a legacy store to migrate first, or no backend.
    """
    target = url or settings.database_url
    return backend_for(target)(target, settings, appending=appending, readonly=readonly)


def exists(settings: Settings) -> bool:
    """Whether the settings' database exists yet (a server-backed one is taken to)."""
    import os

    file = settings.database_url.file
    return os.path.exists(file) if file is not None else True


__all__ = [
    "BACKENDS", "OPEN_STATUSES", "RUN_STATUSES", "STDERR", "STDOUT", "STREAM_NAMES", "Artifact", "Backend",
    "DatabaseURL", "Deleted", "Health", "LogBlock", "LogLine", "NewArtifact", "NewRun", "NewStep", "Run",
    "RunChange", "RunOutcome", "RunQuery", "Step", "StepChange", "StepDuration", "Store", "Watch", "Write",
    "backend_for", "exists", "mask_password", "open_store", "parse_url",
]


def __getattr__(name: str) -> Any:
    if name == "SqliteStore":  # the SQLite backend's class, for code that needs SQLite itself
        from stepflow.store.sqlite import SqliteStore

        return SqliteStore
    raise AttributeError(f"module 'stepflow.store' has no attribute {name!r}")

"""The PostgreSQL backend: one server that a fleet of hosts records into (issue 13).

Imported only when a postgresql:// URL is opened (stepflow.store.BACKENDS), so psycopg is
never loaded by a run on SQLite. connection.py: libpq settings and time bounds; schema.py:
migrations in `stepflow_migrations`; store.py: the Store; watch.py: LISTEN/NOTIFY.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepflow.store.base import Store
from stepflow.store.url import DatabaseURL

if TYPE_CHECKING:
    from stepflow.config import Settings


def open_postgres(
    url: DatabaseURL, settings: Settings, *, appending: bool = False, readonly: bool = False
) -> Store:
    """Open the store at `url` (see stepflow.store.postgres.store.open_postgres).

    Raises:
        StoreError: psycopg is not installed, or the store cannot be opened.
    """
    try:
        from stepflow.store.postgres.store import open_postgres as opener
    except ImportError as exc:
        from stepflow.errors import StoreError

        raise StoreError(f"database {url}: PostgreSQL needs psycopg 3: pip install 'stepflow[postgres]'"
                         f" ({exc})") from None
    return opener(url, settings, appending=appending, readonly=readonly)


__all__ = ["open_postgres"]

"""SQLite-specific: the store's queries stay flat as it grows (plans use indexes, never sort)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepflow.config import load_settings
from stepflow.store import open_store
from stepflow.store.base import RunQuery
from stepflow.store.sqlite.store import runs_clause


@pytest.mark.parametrize("query", [
    RunQuery(limit=20),
    RunQuery(status="failed", limit=20),
    RunQuery(name_glob="nightly backup", limit=20),
    RunQuery(name_glob="deploy*", limit=20),
    RunQuery(status="failed", name_glob="deploy*", since_ts=0.0, limit=20),
    RunQuery(since_ts=0.0, limit=20),
    RunQuery(limit=50, offset=100),
])
def test_ls_queries_read_runs_in_order_without_sorting(storage: Path, query: RunQuery) -> None:
    store = open_store(load_settings(storage=storage))
    try:
        store.conn.execute("ANALYZE")  # plans as a store that has been optimized sees them
        clause, params = runs_clause(query)
        plan = " | ".join(str(row[-1]) for row in store.conn.execute(
            f"EXPLAIN QUERY PLAN SELECT id FROM executions {clause}", params))
    finally:
        store.close()
    assert "TEMP B-TREE" not in plan, plan
    assert "USING INDEX" in plan, plan

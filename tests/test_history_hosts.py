"""Hosts are first-class (issue 13 item 2): `ls --host`, a HOST column once several hosts
recorded, `show` saying where a run ran; the same on SQLite and a real PostgreSQL.

Runs are recorded by the real CLI with STEPFLOW_HOST naming the host, as a fleet's
containers (which share a node name) set it.
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import StepflowRunner


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}  # the file under STEPFLOW_STORAGE_PATH
    return {"STEPFLOW_DATABASE_URL": str(request.getfixturevalue("pg_url"))}


def record(stepflow: StepflowRunner, env: dict[str, str], name: str, host: str | None) -> None:
    extra = {"STEPFLOW_HOST": host} if host else {}
    done = stepflow("run", "--name", name, "--", "true", env={**env, **extra})
    assert done.returncode == 0, done.stderr.decode()


def header(listing: str) -> list[str]:
    return listing.splitlines()[0].split()


def test_one_host_no_host_column_and_show_says_where(stepflow: StepflowRunner, env: dict[str, str]) -> None:
    record(stepflow, env, "backup", None)
    listed = stepflow("ls", env=env)
    assert listed.returncode == 0 and "HOST" not in header(listed.stdout.decode())
    shown = stepflow("show", "last", "--no-color", env=env).stdout.decode()
    assert f"@{os.uname().nodename}" in shown  # "ran by user@host"
    assert json.loads(stepflow("ls", "--json", env=env).stdout)[0]["host"] == os.uname().nodename


def test_several_hosts_a_host_column_and_ls_host(stepflow: StepflowRunner, env: dict[str, str]) -> None:
    record(stepflow, env, "nightly", "web-1")
    record(stepflow, env, "nightly", "web-2")
    record(stepflow, env, "backup", "web-1")

    listed = stepflow("ls", env=env).stdout.decode()
    assert "HOST" in header(listed)
    assert header(listed)[-1] == "HOST"  # no tags here: the last column (STARTED holds spaces)
    assert [line.split()[-1] for line in listed.splitlines()[1:]] == ["web-1", "web-2", "web-1"]

    only = stepflow("ls", "--host", "web-1", "--json", env=env)
    assert only.returncode == 0
    assert [(r["name"], r["host"]) for r in json.loads(only.stdout)] == [("backup", "web-1"), ("nightly", "web-1")]
    one_host = stepflow("ls", "--host", "web-1", env=env).stdout.decode()
    assert "HOST" not in header(one_host)  # one host listed: the filter already says which
    assert stepflow("ls", "--host", "web-", "--json", env=env).stdout.strip() == b"[]"  # a name, not a prefix
    assert stepflow("ls", "--host", "web-2", "--name", "backup", "--json", env=env).stdout.strip() == b"[]"

    shown = json.loads(stepflow("show", "last", "--json", env=env).stdout)
    assert shown["host"] == "web-1"
    assert "@web-1" in stepflow("show", "last", "--no-color", env=env).stdout.decode()

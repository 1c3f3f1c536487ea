"""The real CLI against a real PostgreSQL: run, then ls/show/logs (--follow)/health/db/prune.

Also what a network store must get right: the URL's password never shows, libpq's own
settings (PGPASSFILE, services, sslmode) are honoured, and a server that is down, silent or
locked never holds up the wrapped command nor makes a history command hang or trace back.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import StepflowRunner, py, wait_for

from stepflow.config import load_settings
from stepflow.errors import StoreError
from stepflow.store import LogBlock, NewRun, Run, RunChange, open_store, parse_url

SECRET = "s3cret-Pw"


def with_password(url: str, password: str = SECRET) -> str:
    scheme, _, rest = url.partition("://")
    user, _, after = rest.partition("@")
    return f"{scheme}://{user}:{password}@{after}"


@pytest.fixture
def pg_env(pg_url: str) -> dict[str, str]:
    """STEPFLOW_DATABASE_URL with a password in it (the test server trusts local users, so it is
    never checked: what matters is that it is never shown)."""
    return {"STEPFLOW_DATABASE_URL": with_password(pg_url)}


def out(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stdout.decode() + done.stderr.decode()


def test_run_and_every_history_command(stepflow: StepflowRunner, pg_env: dict[str, str], pg_url: str,
                                       storage: Path) -> None:
    script = ("echo STEP_START:build; echo hello; echo oops >&2; echo STEP_COMPLETE:build;"
              " echo STEP_START:test; echo fine")
    done = stepflow("run", "--name", "deploy", "--tag", "nightly", "--", "bash", "-c", script, env=pg_env)
    assert done.returncode == 0, out(done)
    assert b"hello" in done.stdout
    failed = stepflow("run", "--name", "deploy", "--", "bash", "-c", "echo bad; exit 3", env=pg_env)
    assert failed.returncode == 3
    assert not (storage / "database" / "stepflow.db").exists()  # nothing went to SQLite

    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM executions").fetchone() == (2,)
        assert conn.execute("SELECT COUNT(*) FROM steps").fetchone() == (2,)

    listed = stepflow("ls", env=pg_env)
    assert listed.returncode == 0 and "deploy" in listed.stdout.decode() and "failed" in listed.stdout.decode()
    as_json = stepflow("ls", "--json", "--tag", "nightly", env=pg_env)
    runs: list[dict[str, Any]] = json.loads(as_json.stdout)
    assert [(r["name"], r["status"], r["total_steps"], r["tags"]) for r in runs] == [
        ("deploy", "completed", 2, ["nightly"])]
    run_id = runs[0]["id"]

    shown = stepflow("show", run_id[:8], "--json", env=pg_env)
    detail = json.loads(shown.stdout)
    assert [s["name"] for s in detail["steps"]] == ["build", "test"] and detail["host"] == os.uname().nodename
    last = stepflow("show", "last", env=pg_env).stdout.decode()
    assert "failed" in last and "exit 3" in last  # the later run
    logs = stepflow("logs", run_id, env=pg_env)
    assert sorted(logs.stdout.decode().splitlines()) == ["fine", "hello", "oops"]  # stderr's place: as read
    assert stepflow("logs", run_id, "--stream", "stdout", env=pg_env).stdout == b"hello\nfine\n"
    assert stepflow("logs", run_id, "--stream", "stderr", env=pg_env).stdout == b"oops\n"
    assert stepflow("logs", run_id, "--step", "test", "--stream", "stdout", env=pg_env).stdout == b"fine\n"
    assert stepflow("logs", run_id, "--grep", "fin", env=pg_env).stdout == b"fine\n"

    health = stepflow("health", "--json", env=pg_env)
    assert health.returncode == 0, out(health)
    assert json.loads(health.stdout)["checks"]["backend"] == "postgresql"
    stats = stepflow("db", "stats", "--json", env=pg_env)
    assert stats.returncode == 0, out(stats)
    assert json.loads(stats.stdout)["tables"]["executions"] == 2
    assert "executions 2" in stepflow("db", "stats", env=pg_env).stdout.decode()
    check = stepflow("db", "check", env=pg_env)
    assert check.returncode == 0 and "ok" in check.stdout.decode()
    assert stepflow("db", "optimize", env=pg_env).returncode == 0

    dry = stepflow("prune", "--older-than", "2999-01-01", "--status", "failed", "--dry-run", "--json", env=pg_env)
    assert json.loads(dry.stdout)["runs"] == 1
    pruned = stepflow("prune", "--older-than", "2999-01-01", "--status", "failed", "--json", env=pg_env)
    assert json.loads(pruned.stdout)["runs"] == 1 and json.loads(pruned.stdout)["log_lines"] == 1
    assert [r["id"] for r in json.loads(stepflow("ls", "--json", env=pg_env).stdout)] == [run_id]

    everything = "".join(out(d) for d in (done, failed, listed, as_json, shown, logs, health, stats, check, dry))
    assert SECRET not in everything
    assert "***" in stats.stdout.decode()  # the URL is shown, masked


def read_until(stream: Any, needle: bytes, deadline: float) -> bytes:
    """Bytes from a pipe until `needle` is among them (or the deadline passes)."""
    got = b""
    while needle not in got and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            break
        got += chunk
    return got


def test_logs_follow_wakes_by_listen_notify(stepflow: StepflowRunner, pg_env: dict[str, str], pg_url: str,
                                           tmp_path: Path) -> None:
    go = tmp_path / "go"
    code = ("import os, time\nprint('first', flush=True)\n"
            f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\nprint('second', flush=True)\n")
    env = {**os.environ, **pg_env}
    job = subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--name", "follow-me", "--", *py(code)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    follower = None
    try:
        def first_line_stored() -> bool:
            with psycopg.connect(pg_url) as conn:
                try:
                    return conn.execute("SELECT COUNT(*) FROM logs").fetchone() == (1,)
                except psycopg.errors.UndefinedTable:  # the run's writer has not made the schema yet
                    return False

        assert wait_for(first_line_stored, timeout=60)
        follower = subprocess.Popen([sys.executable, "-m", "stepflow", "logs", "last", "--follow"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert read_until(follower.stdout, b"first\n", time.monotonic() + 60) == b"first\n"

        def listening() -> bool:
            with psycopg.connect(pg_url) as conn:
                rows = conn.execute("SELECT query FROM pg_stat_activity WHERE application_name = 'stepflow-watch'"
                                    " AND datname = current_database()").fetchall()
                return rows == [("LISTEN stepflow_changes",)]

        assert wait_for(listening, timeout=60)  # it waits on LISTEN, not on a poll loop of queries
        go.touch()
        assert job.wait(60) == 0
        rest, err = follower.communicate(timeout=60)
        assert rest == b"second\n", err
        assert follower.returncode == 0
    finally:
        for proc in (job, follower):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_password_is_masked_in_every_error(stepflow: StepflowRunner, tmp_path: Path) -> None:
    nowhere = f"postgresql://ops:{SECRET}@/stepflow?host={tmp_path}/no-server&port=5999"
    env = {"STEPFLOW_DATABASE_URL": nowhere}
    listed = stepflow("ls", env=env)
    assert listed.returncode == 1
    message = listed.stderr.decode()
    assert message.startswith("stepflow: error: store postgresql://ops:***@/stepflow") and "Traceback" not in message
    assert len(message.strip().splitlines()) == 1
    ran = stepflow("run", "--", "bash", "-c", "echo still ran; exit 4", env=env)
    assert ran.returncode == 4 and ran.stdout == b"still ran\n"  # the command never waits for the store
    health = stepflow("health", env=env)
    assert health.returncode == 1 and "store unreadable: store postgresql://ops:***@/stepflow" in out(health)
    for done in (listed, ran, health, stepflow("db", "stats", env=env)):
        assert SECRET not in out(done)
        assert "Traceback" not in out(done)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for s in held:
        s.close()
    listener.close()


def test_a_silent_server_fails_fast_and_never_holds_up_the_command(stepflow: StepflowRunner,
                                                                   silent_server: int) -> None:
    url = f"postgresql://ops:{SECRET}@127.0.0.1:{silent_server}/stepflow"
    with pytest.raises(StoreError, match=r"store postgresql://ops:\*\*\*@127\.0\.0\.1.*connect_timeout"):
        open_store(load_settings(), url=parse_url(url), appending=True)
    ran = stepflow("run", "--", "bash", "-c", "echo done", env={"STEPFLOW_DATABASE_URL": url})
    assert ran.returncode == 0 and ran.stdout == b"done\n"
    assert SECRET not in out(ran)


def test_a_locked_table_times_the_writer_out_and_it_recovers(pg_url: str) -> None:
    store = open_store(load_settings(), url=parse_url(pg_url), appending=True)
    run = Run(id="r1", name="n", command="c", status="running", created_at="2026-01-01T00:00:00+00:00")
    store.write([NewRun(run)])
    with psycopg.connect(pg_url) as blocker:
        blocker.execute("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE")  # a transaction held open
        with pytest.raises(StoreError, match="locked|in time"):
            store.write([LogBlock("r1", None, 1, 0, 1, 1.0, b"line")])
        blocker.rollback()
    store.write([LogBlock("r1", None, 1, 0, 1, 1.0, b"line")])  # the batch, retried: kept once
    assert [x.text for x in store.log_lines("r1")] == [b"line"]
    store.close()


def test_a_restarted_server_is_reconnected_to(pg_url: str, pg_server: Any) -> None:
    store = open_store(load_settings(), url=parse_url(pg_url), appending=True)
    store.write([NewRun(Run(id="r1", name="n", command="c", status="running", created_at="x"))])
    watch = store.watch()
    cursor = watch.cursor()
    pg_server.process.send_signal(signal.SIGINT)  # a fast shutdown: sessions are cut, as in a real restart
    pg_server.process.wait(60)
    assert watch.wait(cursor, 60) != cursor  # a lost listener counts as a change: followers look again
    with pytest.raises(StoreError):
        store.write([LogBlock("r1", None, 1, 0, 1, 1.0, b"during the outage")])
    pg_server.start()
    store.write([LogBlock("r1", None, 1, 0, 1, 1.0, b"during the outage")])
    assert [x.text for x in store.log_lines("r1")] == [b"during the outage"]
    cursor = watch.wait(watch.cursor(), 0)  # listening again (the gap itself moves the cursor once)
    store.write([RunChange("r1", line_count=1)])
    assert watch.wait(cursor, 60) != cursor  # and woken by the next commit
    watch.close()
    store.close()


def test_libpq_settings_pass_through(stepflow: StepflowRunner, pg_url: str, pg_server: Any, tmp_path: Path) -> None:
    """PGPASSFILE and a service file work as with psql; a bad sslmode is libpq's error, told cleanly."""
    database = pg_url.split("@/", 1)[1].split("?", 1)[0]
    password = "pw-" + SECRET
    pg_server.psql(f"DO $$ BEGIN CREATE ROLE pwuser LOGIN PASSWORD '{password}'; EXCEPTION WHEN duplicate_object"
                   f" THEN NULL; END $$; GRANT ALL ON DATABASE {database} TO pwuser;"
                   f" ALTER DATABASE {database} OWNER TO pwuser")
    hba = pg_server.data / "pg_hba.conf"
    if "pwuser" not in hba.read_text():
        hba.write_text("local all pwuser scram-sha-256\n" + hba.read_text())
        pg_server.psql("SELECT pg_reload_conf()")
    sock = pg_server.socket_dir
    bare = f"postgresql://pwuser@/{database}?host={sock}&port={pg_server.port}"

    refused = stepflow("ls", env={"STEPFLOW_DATABASE_URL": bare, "PGPASSFILE": str(tmp_path / "none")})
    assert refused.returncode == 1 and "password" in refused.stderr.decode()

    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:{database}:pwuser:{password}\n")
    passfile.chmod(0o600)
    env = {"STEPFLOW_DATABASE_URL": bare, "PGPASSFILE": str(passfile)}
    ran = stepflow("run", "--name", "via-passfile", "--", "echo", "hi", env=env)
    assert ran.returncode == 0
    listed = stepflow("ls", "--json", env=env)
    assert listed.returncode == 0, out(listed)
    assert [r["name"] for r in json.loads(listed.stdout)] == ["via-passfile"]

    services = tmp_path / "services"
    services.write_text(f"[fleet]\nhost={sock}\nport={pg_server.port}\ndbname={database}\nuser=pwuser\n")
    by_service = stepflow("ls", "--json", env={"STEPFLOW_DATABASE_URL": "postgresql:///?service=fleet",
                                               "PGSERVICEFILE": str(services), "PGPASSFILE": str(passfile)})
    assert by_service.returncode == 0, out(by_service)
    assert [r["name"] for r in json.loads(by_service.stdout)] == ["via-passfile"]

    with_pw = stepflow("db", "stats", env={"STEPFLOW_DATABASE_URL": with_password(bare, password),
                                           "PGPASSFILE": str(tmp_path / "none")})
    assert with_pw.returncode == 0 and password not in out(with_pw)

    bad = stepflow("ls", env={"STEPFLOW_DATABASE_URL": bare + "&sslmode=sometimes"})
    assert bad.returncode == 1 and "sslmode" in bad.stderr.decode() and "Traceback" not in bad.stderr.decode()


def test_a_run_on_sqlite_never_imports_psycopg() -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "stepflow", "run", "--", "true"],
                          capture_output=True, check=True)
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.decode().splitlines() if "|" in line]
    assert any(n.startswith("stepflow.store.sqlite") for n in imported)  # the log covers the writer's thread
    assert not [name for name in imported if name.startswith(("psycopg", "stepflow.store.postgres"))]


def test_runs_from_many_hosts_keep_their_host(stepflow: StepflowRunner, pg_env: dict[str, str]) -> None:
    """STEPFLOW_HOST names the host a run records (containers of a fleet share a node name)."""
    for host in ("web-1", "web-2"):
        assert stepflow("run", "--", "true", env={**pg_env, "STEPFLOW_HOST": host}).returncode == 0
    assert stepflow("run", "--", "true", env=pg_env).returncode == 0
    hosts = [json.loads(stepflow("show", r["id"], "--json", env=pg_env).stdout)["host"]
             for r in json.loads(stepflow("ls", "--json", env=pg_env).stdout)]
    assert hosts == [os.uname().nodename, "web-2", "web-1"]


def test_the_password_never_reaches_the_stored_output(stepflow: StepflowRunner, pg_url: str) -> None:
    """A command that prints the URL (a debug dump of its environment) stores it masked."""
    for url in (with_password(pg_url), pg_url + f"&password={SECRET}"):
        env = {"STEPFLOW_DATABASE_URL": url, "STEPFLOW_ENV_ALLOW": "STEPFLOW_DATABASE_URL"}
        ran = stepflow("run", "--", "bash", "-c", 'echo "url is $STEPFLOW_DATABASE_URL"', env=env)
        assert ran.returncode == 0 and ran.stdout.startswith(b"url is postgresql://")
        assert SECRET not in out(ran)  # masked like any secret: in what is shown as in what is stored
        assert SECRET not in stepflow("logs", "last", env=env).stdout.decode()
        assert SECRET not in stepflow("show", "last", "--json", env=env).stdout.decode()
        assert "***" in stepflow("logs", "last", env=env).stdout.decode()
    with psycopg.connect(pg_url) as conn:
        stored = conn.execute("SELECT string_agg(environment || command, '') FROM executions").fetchone()[0]
        stored += bytes(conn.execute("SELECT string_agg(data, '') FROM logs").fetchone()[0]).decode()
    assert SECRET not in stored

"""Fail-open across the network: a PostgreSQL server that goes away mid-run (issue 13, item 3).

Each test has a server of its own (tests/pgserver.py), stopped, frozen (SIGSTOP) and started
again around the real `stepflow run`. The job prints its lines and steps in phases and waits
between them for a file the test creates, so every moment is set by what the test has seen
(a line in the spool, a row in PostgreSQL), never by a clock. What is asserted: the command's
exit status is its own, stepflow exits as soon as the command does, and in the end every line
and step is in PostgreSQL exactly once and the spool folders are empty.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import StepflowRunner, wait_for

from stepflow.config import load_settings
from stepflow.store.base import LogBlock, NewStep
from stepflow.store.spool import read_batches

LINES = 50  # per phase
# A job of phases: STEP_START:phaseN, LINES lines, STEP_COMPLETE:phaseN, then (but after the
# last) it creates <dir>/doneN and waits for <dir>/goN. Exits with the status given.
JOB = r"""
import os, sys, time
folder, phases, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for p in range(phases):
    print(f"STEP_START:phase{p}", flush=True)
    for i in range(LINES):
        print(f"phase {p} line {i}", flush=True)
    print(f"STEP_COMPLETE:phase{p}", flush=True)
    if p < phases - 1:
        open(os.path.join(folder, f"done{p}"), "w").close()
        while not os.path.exists(os.path.join(folder, f"go{p}")):
            time.sleep(0.01)
sys.exit(status)
""".replace("LINES", str(LINES))


@pytest.fixture
def server() -> Iterator[Any]:
    """A PostgreSQL server of this test's own, so stopping it disturbs no other test."""
    from pgserver import temporary_server

    try:
        with temporary_server("sfpo") as pg:
            yield pg
    except RuntimeError as exc:
        pytest.skip(f"no PostgreSQL server for these tests: {exc}")


@pytest.fixture
def url(server: Any) -> Iterator[str]:
    made = str(server.create_database("outage"))
    SPOOL_FOLDERS[:] = load_settings(database=made).spool_folders
    yield made
    SPOOL_FOLDERS.clear()


def halt(server: Any) -> None:
    """Stop the server the way a crash or a restart does: sessions are cut (a fast shutdown)."""
    server.process.send_signal(signal.SIGINT)
    server.process.wait(60)
    server.process = None


def freeze(server: Any, sig: int) -> None:
    """SIGSTOP (or SIGCONT) the whole server: it keeps its sockets and answers nothing."""
    for pid in server.pids():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # a backend that ended between the listing and now
            pass


class Run:
    """One `stepflow run` of JOB, in the background, its output in files."""

    def __init__(self, tmp: Path, name: str, env: dict[str, str], *, phases: int, status: int = 0) -> None:
        self.folder = tmp / name
        self.folder.mkdir()
        self.phases = phases
        self.out = open(self.folder / "stdout", "wb")  # noqa: SIM115 - closed in wait()
        self.err = open(self.folder / "stderr", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stepflow", "run", "-o", "plain", "--name", name, "--",
             sys.executable, "-u", "-c", JOB, str(self.folder), str(phases), str(status)],
            env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)

    def reached(self, phase: int) -> None:
        """Wait until the job has printed phase `phase` and waits for the go."""
        assert wait_for(lambda: (self.folder / f"done{phase}").exists() or self.proc.poll() is not None,
                        timeout=120), self.stderr()
        assert self.proc.poll() is None, self.stderr()

    def go(self, phase: int) -> None:
        (self.folder / f"go{phase}").touch()

    def wait(self) -> tuple[int, float]:
        """The exit status and the seconds stepflow took from the last go (or start) to its exit."""
        start = time.monotonic()
        status = self.proc.wait(120)
        took = time.monotonic() - start
        self.out.close()
        self.err.close()
        return status, took

    def stderr(self) -> str:
        return (self.folder / "stderr").read_text(errors="replace")

    def expected_lines(self) -> list[bytes]:
        return [f"phase {p} line {i}".encode() for p in range(self.phases) for i in range(LINES)]


SPOOL_FOLDERS: list[Path] = []  # the test's store's: set by the `url` fixture


def spool_files() -> list[Path]:
    return [p for folder in SPOOL_FOLDERS if folder.is_dir() for p in folder.iterdir()]


def spooled(what: str) -> int:
    """Output lines (what="lines") or step rows (what="steps") in the spool files now."""
    total = 0
    for path in spool_files():
        for _seq, writes in read_batches(path):
            for w in writes:
                if what == "lines" and isinstance(w, LogBlock):
                    total += w.line_count
                elif what == "steps" and isinstance(w, NewStep):
                    total += 1
    return total


def stored(url: str) -> dict[str, dict[str, Any]]:
    """Per run name: its row's status and exit code, its steps and its output lines, as stored."""
    found: dict[str, dict[str, Any]] = {}
    with psycopg.connect(url) as conn:
        try:
            runs = conn.execute("SELECT id, name, status, exit_code FROM executions").fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
        for run_id, name, status, exit_code in runs:
            steps = conn.execute("SELECT name, status FROM steps WHERE execution_id = %s ORDER BY step_index",
                                 (run_id,)).fetchall()
            lines: list[bytes] = []
            for count, data in conn.execute("SELECT line_count, data FROM logs WHERE execution_id = %s"
                                            " ORDER BY first_line", (run_id,)):
                lines.extend(bytes(data).split(b"\n") if count > 1 else [bytes(data)])
            found[name] = {"status": status, "exit_code": exit_code, "steps": steps, "lines": lines}
    return found


def lines_stored(url: str, name: str) -> int:
    return len(stored(url).get(name, {}).get("lines", []))


def assert_complete(url: str, run: Run, name: str, *, status: str = "completed", exit_code: int = 0) -> None:
    """Every line once, in order; every step once, completed; the run's end as the command ended."""
    got = stored(url)[name]
    assert got["lines"] == run.expected_lines()  # none lost, none twice
    assert got["steps"] == [(f"phase{p}", "completed") for p in range(run.phases)]
    assert (got["status"], got["exit_code"]) == (status, exit_code)


def test_server_stopped_mid_run_and_started_after_it(stepflow: StepflowRunner, server: Any, url: str,
                                                      tmp_path: Path) -> None:
    env = {"STEPFLOW_DATABASE_URL": url}
    run = Run(tmp_path, "outage", env, phases=3, status=3)
    run.reached(0)
    assert wait_for(lambda: lines_stored(url, "outage") == LINES, timeout=60)  # phase 0 went in directly
    halt(server)
    run.go(0)
    run.reached(1)
    assert wait_for(lambda: spooled("lines") == LINES, timeout=60)  # phase 1: the writer found the server gone
    run.go(1)
    status, took = run.wait()
    assert status == 3  # the command's own
    assert took < 5, run.stderr()  # stepflow ends with its command: nothing waits for the server
    assert "is kept in" in run.stderr()
    assert (run.folder / "stdout").read_bytes().count(b"\n") == 3 * (LINES + 2)  # every line passed on
    assert spooled("lines") == 2 * LINES and spooled("steps") == 2

    server.start()
    listed = stepflow("ls", env=env)  # any later command puts the spool into the store
    assert listed.returncode == 0, listed.stderr
    assert "failed" in listed.stdout.decode()  # as the command ended, not `abandoned`
    assert_complete(url, run, "outage", status="failed", exit_code=3)
    assert spool_files() == []
    again = stepflow("db", "replay", env=env)  # nothing left, and nothing stored twice
    assert again.returncode == 0 and b"replayed 0 batches" in again.stdout
    assert_complete(url, run, "outage", status="failed", exit_code=3)


def test_server_back_while_the_job_still_runs(server: Any, url: str, tmp_path: Path) -> None:
    env = {"STEPFLOW_DATABASE_URL": url}
    run = Run(tmp_path, "back-soon", env, phases=3)
    run.reached(0)
    assert wait_for(lambda: lines_stored(url, "back-soon") == LINES, timeout=60)
    halt(server)
    run.go(0)
    run.reached(1)
    assert wait_for(lambda: spooled("lines") == LINES, timeout=60)
    server.start()
    # The job prints nothing now: the writer puts its spool into the store on its own.
    assert wait_for(lambda: lines_stored(url, "back-soon") == 2 * LINES, timeout=60), run.stderr()
    assert run.proc.poll() is None  # while the job still runs
    run.go(1)
    status, took = run.wait()
    assert status == 0 and took < 5
    assert "store is writable again" in run.stderr()
    assert_complete(url, run, "back-soon")  # without any other command
    assert spool_files() == []


def test_a_frozen_server_never_holds_up_the_command(stepflow: StepflowRunner, server: Any, url: str,
                                                    tmp_path: Path) -> None:
    env = {"STEPFLOW_DATABASE_URL": url}
    run = Run(tmp_path, "frozen", env, phases=3, status=5)
    run.reached(0)
    assert wait_for(lambda: lines_stored(url, "frozen") == LINES, timeout=60)
    freeze(server, signal.SIGSTOP)  # it keeps its sockets and never answers: no error comes
    try:
        run.go(0)
        run.reached(1)
        # The writer gives up on the silent server and spools: the job went on meanwhile.
        assert wait_for(lambda: spooled("lines") == LINES, timeout=60), run.stderr()
        run.go(1)
        status, took = run.wait()
    finally:
        freeze(server, signal.SIGCONT)
    assert status == 5
    assert took < 8, run.stderr()  # at most one connect_timeout at the end, never a hang
    listed = stepflow("ls", env=env)
    assert listed.returncode == 0, listed.stderr
    assert_complete(url, run, "frozen", status="failed", exit_code=5)
    assert spool_files() == []


def test_many_runs_in_one_outage_are_all_replayed(stepflow: StepflowRunner, server: Any, url: str,
                                                  tmp_path: Path) -> None:
    env = {"STEPFLOW_DATABASE_URL": url}
    first = stepflow("run", "--name", "before", "--", "true", env=env)
    assert first.returncode == 0
    halt(server)
    runs = [Run(tmp_path, f"down-{i}", env, phases=2, status=i) for i in range(6)]
    for run in runs:
        run.reached(0)
    for run in runs:
        run.go(0)
    for i, run in enumerate(runs):
        status, took = run.wait()
        assert status == i and took < 5, run.stderr()
    assert spooled("lines") == 6 * 2 * LINES and spooled("steps") == 6 * 2
    server.start()
    # A later run replays the others while its command runs: the command waits for the spools to go.
    folders = ", ".join(repr(str(f)) for f in SPOOL_FOLDERS)
    until_gone = (f"import os, time\nwhile any(os.path.isdir(f) and os.listdir(f) for f in [{folders}]):"
                  " time.sleep(0.05)\n")
    later = stepflow("run", "--name", "after", "--", sys.executable, "-c", until_gone, env=env, timeout=120)
    assert later.returncode == 0, later.stderr
    for i, run in enumerate(runs):
        assert_complete(url, run, f"down-{i}", status="failed" if i else "completed", exit_code=i)
    assert spool_files() == []
    assert sorted(stored(url)) == sorted(["before", "after", *(f"down-{i}" for i in range(6))])


def test_a_run_is_judged_abandoned_only_on_the_host_it_names(stepflow: StepflowRunner, url: str) -> None:
    """STEPFLOW_HOST is who this host is: a fleet's containers share a node name, not their pids."""
    from stepflow import procs
    from stepflow.store import NewRun, Run, open_store, parse_url

    dead = subprocess.Popen(["true"])
    dead.wait()
    store = open_store(load_settings(), url=parse_url(url), appending=True)
    node = os.uname().nodename
    for run_id, host in (("aaaa0001", "web-1"), ("aaaa0002", node)):
        store.write([NewRun(Run(id=run_id, name=host, command="c", status="running",
                                created_at="2026-01-01T00:00:00+00:00", host=host, pid=dead.pid,
                                pid_started=procs.start_time(os.getpid())))])
    store.close()
    listed = stepflow("ls", "--json", env={"STEPFLOW_DATABASE_URL": url, "STEPFLOW_HOST": "web-1"})
    assert listed.returncode == 0, listed.stderr
    import json

    statuses = {r["name"]: r["status"] for r in json.loads(listed.stdout)}
    # web-1's process is gone; the run of the node name ran in another container (STEPFLOW_HOST
    # unset there), whose pids are not seen from here
    assert statuses == {"web-1": "abandoned", node: "running"}


def test_a_spooled_run_goes_only_to_its_own_store(stepflow: StepflowRunner, server: Any, url: str,
                                                  storage: Path) -> None:
    """The crontab line names the server; a person's shell often does not. A run spooled for
    PostgreSQL is never replayed into the host's SQLite file by a command that opens that."""
    env = {"STEPFLOW_DATABASE_URL": url}
    assert stepflow("run", "--name", "local", "--", "true").returncode == 0  # the host's SQLite store
    halt(server)
    away = stepflow("run", "--name", "for-the-server", "--", "echo", "kept", env=env)
    assert away.returncode == 0 and "is kept in" in away.stderr.decode()
    assert len(spool_files()) == 1
    assert stepflow("run", "--name", "local-again", "--", "true").returncode == 0
    local = stepflow("ls", "--json")
    assert local.returncode == 0, local.stderr
    import json

    assert sorted(r["name"] for r in json.loads(local.stdout)) == ["local", "local-again"]
    assert len(spool_files()) == 1
    server.start()
    assert stepflow("ls", env=env).returncode == 0
    assert stored(url)["for-the-server"]["lines"] == [b"kept"]
    assert spool_files() == []

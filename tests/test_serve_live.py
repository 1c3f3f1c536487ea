"""Server-sent events: a running job's new lines reach every client, from one watcher; resume works."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import StepflowRunner, py, wait_for
from tests.serving import serving

pytest.importorskip("starlette")

WAITER = """
import sys
print("STEP_START:wait")
print("first")
with open(sys.argv[1]) as fifo:
    for line in fifo:
        print(line.rstrip("\\n"))
print("STEP_START:after")
print("last")
"""


@contextlib.contextmanager
def waiting_job(tmp_path: Path, *, name: str = "waiter") -> Iterator[tuple[str, Any]]:
    """A `stepflow run` whose job prints what the test writes to a FIFO; yields (run id, writer)."""
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--name", name, "--", *py(WAITER), str(fifo)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writer = open(fifo, "w")  # blocks until the job opens it: by then the run is recorded  # noqa: SIM115
    try:
        ids: list[str] = []

        def found() -> bool:
            out = subprocess.run([sys.executable, "-m", "stepflow", "ls", "--json"], capture_output=True, timeout=60)
            runs = [r for r in json.loads(out.stdout or b"[]") if r["name"] == name and r["status"] == "running"]
            ids[:] = [r["id"] for r in runs]
            return bool(ids)

        assert wait_for(found, timeout=60)
        yield ids[0], writer
    finally:
        with contextlib.suppress(BrokenPipeError):
            writer.close()
        proc.wait(timeout=60)


class Events:
    """Reads server-sent events on a thread; `wait(pred)` polls what arrived."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.events: list[tuple[str, str | None, Any]] = []  # (event, id, data)
        self.comments = 0
        self.closed = False
        self._client = httpx.Client(timeout=httpx.Timeout(60, read=120))
        self._stream = self._client.stream("GET", url, headers=headers or {})
        self.response = self._stream.__enter__()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event, event_id, data = "message", None, []
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    self.comments += 1
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and data:
                    self.events.append((event, event_id, json.loads("\n".join(data))))
                    event, event_id, data = "message", None, []
        except httpx.HTTPError:
            pass
        self.closed = True

    def texts(self) -> list[str]:
        return [x["text"] for name, _, payload in list(self.events) if name == "lines" for x in payload]

    def wait(self, predicate: Any, timeout: float = 60) -> bool:
        return wait_for(lambda: predicate(self), timeout=timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.__exit__(None, None, None)
        self._client.close()


def test_a_line_printed_while_following_arrives_then_the_end(tmp_path: Path) -> None:
    with waiting_job(tmp_path) as (run_id, feed), serving() as server:
        events = Events(f"{server.url}/api/executions/{run_id}/events")
        try:
            assert events.response.headers["content-type"].startswith("text/event-stream")
            assert events.wait(lambda e: "first" in e.texts())
            assert "live line" not in events.texts()
            feed.write("live line\n")
            feed.flush()
            assert events.wait(lambda e: "live line" in e.texts())
            feed.close()
            assert events.wait(lambda e: e.closed)
            names = [name for name, _, _ in events.events]
            assert names[-1] == "end" and events.events[-1][2]["status"] == "completed"
            assert events.texts() == ["first", "live line", "last"]
            steps = [payload for name, _, payload in events.events if name == "steps"][-1]
            assert [s["name"] for s in steps] == ["wait", "after"]
        finally:
            events.close()


def test_resume_from_last_event_id_sends_only_later_lines(stepflow: StepflowRunner) -> None:
    assert stepflow("run", "--", *py("for i in range(5): print(f'line {i}')")).returncode == 0
    with serving() as server:
        whole = Events(f"{server.url}/api/executions/last/events")
        assert whole.wait(lambda e: e.closed)
        numbers = [x["n"] for name, _, p in whole.events if name == "lines" for x in p]
        resumed = Events(f"{server.url}/api/executions/last/events", headers={"Last-Event-ID": str(numbers[1])})
        assert resumed.wait(lambda e: e.closed)
        assert resumed.texts() == ["line 2", "line 3", "line 4"]
        assert resumed.events[-1][0] == "end"
        by_query = Events(f"{server.url}/api/executions/last/events?after={numbers[3]}")
        assert by_query.wait(lambda e: e.closed) and by_query.texts() == ["line 4"]
        for e in (whole, resumed, by_query):
            e.close()


def test_many_clients_one_read_per_change(tmp_path: Path) -> None:
    with waiting_job(tmp_path) as (run_id, feed), serving() as server:
        clients = [Events(f"{server.url}/api/executions/{run_id}/events") for _ in range(30)]
        try:
            for c in clients:
                assert c.wait(lambda e: "first" in e.texts())
            assert wait_for(lambda: server.get("/api/health/metrics").json()["live_clients"] == 30)
            before = server.get("/api/health/metrics").json()
            feed.write("to everyone\n")
            feed.flush()
            for c in clients:
                assert c.wait(lambda e: "to everyone" in e.texts())
            after = server.get("/api/health/metrics").json()
            assert after["followed_runs"] == 1
            # One store read per change of the followed run, not one per client (that would be 30+).
            assert after["watch_reads"] - before["watch_reads"] <= 5
        finally:
            for c in clients:
                c.close()


def test_heartbeat_comments_keep_a_quiet_stream_open(tmp_path: Path) -> None:
    # The heartbeat interval is a setting of create_app; a quiet run shows it within seconds.
    code = ("import sys, uvicorn; from stepflow.config import load_settings; from stepflow.serve.app import create_app;"
            " uvicorn.run(create_app(load_settings(), heartbeat=0.2), host='127.0.0.1', port=int(sys.argv[1]),"
            " log_level='warning')")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with waiting_job(tmp_path) as (run_id, feed):
        proc = subprocess.Popen([sys.executable, "-c", code, str(port)], stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            assert wait_for(lambda: _answers(url), timeout=30)
            events = Events(f"{url}/api/executions/{run_id}/events")
            assert events.wait(lambda e: e.comments >= 4)
            assert not events.closed
            events.close()
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/api/health?integrity=false", timeout=5).status_code in (200, 503)
    except httpx.TransportError:
        return False


def test_the_runs_list_stream_announces_a_new_run(stepflow: StepflowRunner) -> None:
    assert stepflow("run", "--name", "one", "--", "true").returncode == 0
    with serving() as server:
        events = Events(f"{server.url}/api/events")
        try:
            assert events.wait(lambda e: any(n == "runs" for n, _, _ in e.events))
            assert stepflow("run", "--name", "two", "--", "true").returncode == 0
            assert events.wait(lambda e: any(n == "runs" and p["runs"][0]["name"] == "two" for n, _, p in e.events))
        finally:
            events.close()

"""Pings against a real HTTP server on 127.0.0.1 that each test starts: answers, 5xx, 4xx,
a server that is down and one that never answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from stepflow.cron.ping import Pinger, finish_event, ping, ping_url
from tests.cron_http import UUID, Server, serving

RID = "3f2a9c1e-0000-4000-8000-000000000001"


@pytest.fixture
def server() -> Iterator[Server]:
    with serving() as state:
        yield state


def no_pause(_seconds: float) -> None:
    """Retries without their pauses, so the tests are quick (the pause itself is not under test)."""


@pytest.mark.parametrize(("event", "path"), [
    ("start", f"/{UUID}/start"), ("success", f"/{UUID}"), ("fail", f"/{UUID}/fail"), ("log", f"/{UUID}/log"),
    (0, f"/{UUID}/0"), (3, f"/{UUID}/3"), (255, f"/{UUID}/255"), (256, f"/{UUID}/fail"),
])
def test_ping_urls_follow_healthchecks(event: str | int, path: str) -> None:
    assert ping_url(f"https://hc-ping.com/{UUID}/", event, run_id=RID) == f"https://hc-ping.com{path}?rid={RID}"


def test_a_ping_url_with_a_query_keeps_it() -> None:
    assert ping_url("https://hc.example/ping/KEY/job?create=1", "fail", run_id="r") == (
        "https://hc.example/ping/KEY/job/fail?create=1&rid=r")
    assert ping_url("https://hc.example/x", 0) == "https://hc.example/x/0"


@pytest.mark.parametrize(("status", "code", "event"), [
    ("completed", 0, 0), ("failed", 3, 3), ("timed_out", 124, 124), ("failed", None, "fail"),
    ("completed", None, "success"), ("failed", 0, 1), ("skipped", 0, "log"), ("cancelled", 130, 130),
])
def test_the_finish_event_of_a_run(status: str, code: int | None, event: str | int) -> None:
    assert finish_event(status, code) == event


def test_a_ping_is_posted_with_the_run_id_and_the_body(server: Server) -> None:
    assert ping(server.url, "start", run_id=RID) is None
    assert ping(server.url, 3, run_id=RID, body=b"last lines\n") is None
    assert server.seen == [("POST", f"/{UUID}/start?rid={RID}", b""), ("POST", f"/{UUID}/3?rid={RID}", b"last lines\n")]


def test_a_5xx_is_tried_again(server: Server) -> None:
    server.statuses = [503, 502]
    assert ping(server.url, 0, sleep=no_pause) is None
    assert [p for _, p, _ in server.seen] == [f"/{UUID}/0"] * 3


def test_a_server_that_keeps_failing_gives_a_warning_after_the_attempts(server: Server) -> None:
    server.statuses = [500] * 10
    warning = ping(server.url, "fail", sleep=no_pause)
    assert warning is not None and warning.endswith("/.../fail failed: HTTP 500 Internal Server Error")
    assert len(server.seen) == 3 and UUID not in warning  # the check's uuid is a key: never in a warning


def test_a_4xx_is_not_tried_again(server: Server) -> None:
    server.statuses = [404]
    warning = ping(server.url, 0, sleep=no_pause)
    assert warning is not None and warning.endswith("failed: HTTP 404 Not Found") and len(server.seen) == 1


def test_a_server_that_is_down(server: Server) -> None:
    with socket.socket() as s:  # a port nothing listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    warning = ping(f"http://127.0.0.1:{port}/{UUID}", "start", sleep=no_pause)
    assert warning is not None and "Connection refused" in warning and warning.startswith(f"ping http://127.0.0.1:{port}/...")


def test_a_server_that_never_answers_is_given_up_at_the_bound(server: Server) -> None:
    server.hang = True
    started = time.monotonic()
    warning = ping(server.url, 0, timeout=5.0, attempt_timeout=2.0, sleep=no_pause)
    assert warning is not None and ("timed out" in warning or "not answered within 5 s" in warning), warning
    assert server.seen  # it was reached, it just never answered
    assert time.monotonic() - started < 60  # bounded (generously: only a hang past the bound fails this)


def test_a_bad_url_is_a_warning() -> None:
    assert ping("not a url", 0) == "ping not sent: 'not a url' is not an http:// or https:// URL"
    assert ping("ftp://x/y", 0) == "ping not sent: 'ftp://x/y' is not an http:// or https:// URL"


def test_pinger_sends_start_then_finish_in_order(server: Server) -> None:
    pinger = Pinger(server.url, run_id=RID)
    pinger.start()
    assert pinger.finish(0, body=b"done\n") == []
    assert [p for _, p, _ in server.seen] == [f"/{UUID}/start?rid={RID}", f"/{UUID}/0?rid={RID}"]


def test_pinger_collects_warnings_of_both(server: Server) -> None:
    server.statuses = [404, 404]
    pinger = Pinger(server.url)
    pinger.start()
    warnings = pinger.finish("fail")
    assert len(warnings) == 2 and all("HTTP 404" in w for w in warnings)

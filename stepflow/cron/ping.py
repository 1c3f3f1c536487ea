"""Pings in the healthchecks.io convention: `<url>/start`, `<url>`, `<url>/fail`, `<url>/<exit
status>`, `<url>/log`, each with `?rid=<run id>` and the masked log tail as the POST body.

A ping never raises and never holds the run longer than `timeout` seconds in all (default
10 s), whatever the network does: attempts (at most `attempts`, each given at most
`attempt_timeout` seconds) run in a daemon thread the caller stops waiting for at the bound,
DNS included, which urllib's own timeout does not cover. Connection errors, timeouts and
HTTP 5xx are tried again after a short pause; 4xx is not (a wrong URL stays wrong). What went
wrong comes back as a warning string.

Plain urllib: no dependency, and imported only when a ping is sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

Event = Literal["start", "success", "fail", "log"] | int
DEFAULT_TIMEOUT = 10.0
ATTEMPT_TIMEOUT = 5.0
ATTEMPTS = 3
PAUSES = (0.5, 1.0, 2.0)  # before the 2nd, 3rd, 4th attempt
USER_AGENT = "stepflow"


def ping_url(url: str, event: Event, *, run_id: str | None = None) -> str:
    """The URL for `event`: `/start`, `` (success), `/fail`, `/log` or `/<0-255>`, plus `rid`. Pure."""
    from urllib.parse import quote, urlsplit, urlunsplit

    if isinstance(event, bool) or not (isinstance(event, int) or event in ("start", "success", "fail", "log")):
        raise ValueError(f"ping event {event!r}")
    if isinstance(event, int) and not 0 <= event <= 255:
        event = "fail"  # an exit status beyond 255 is no exit status: report a failure
    suffix = "" if event == "success" else f"/{event}"
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    path = parts.path.rstrip("/") + suffix
    query = parts.query
    if run_id:
        query = (query + "&" if query else "") + "rid=" + quote(run_id, safe="")
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


def finish_event(status: str, exit_code: int | None) -> Event:
    """The event for a finished run: its exit status when it has one, else success or fail."""
    if status == "skipped":
        return "log"
    if exit_code is not None and 0 <= exit_code <= 255:
        return 0 if status == "completed" and exit_code == 0 else (exit_code or 1)
    return "success" if status == "completed" else "fail"


def ping(
    url: str,
    event: Event,
    *,
    run_id: str | None = None,
    body: bytes = b"",
    timeout: float = DEFAULT_TIMEOUT,
    attempt_timeout: float = ATTEMPT_TIMEOUT,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Send one ping; None when the server took it, else a one-line warning. Never raises.

    Waits at most `timeout` seconds (see the module docstring).
    """
    try:
        target = ping_url(url, event, run_id=run_id)
    except ValueError as exc:
        return f"ping not sent: {exc}"
    outcome: list[str | None] = []
    deadline = time.monotonic() + timeout
    worker = threading.Thread(
        target=lambda: outcome.append(_send(target, body, deadline, attempt_timeout, attempts, sleep)),
        name="stepflow-ping", daemon=True,
    )
    worker.start()
    worker.join(max(deadline - time.monotonic(), 0.0))
    if worker.is_alive() or not outcome:
        return f"ping {_shown(target)} not answered within {timeout:g} s; gave up"
    return outcome[0]


class Pinger:
    """The start ping sent in the background (the command starts at once), the finish ping
    after it, in order, each within its bound: `finish` holds the run's end at most `timeout`
    seconds, plus what is left of the start ping's own bound when the run was shorter than it
    (so at most 2 x timeout + 1 s, 21 s by default, and only when the server does not answer)."""

    def __init__(self, url: str, *, run_id: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url
        self.run_id = run_id
        self.timeout = timeout
        self.warnings: list[str] = []
        self._start: threading.Thread | None = None

    def start(self) -> None:
        def send() -> None:
            warning = ping(self.url, "start", run_id=self.run_id, timeout=self.timeout)
            if warning:
                self.warnings.append(warning)

        self._start = threading.Thread(target=send, name="stepflow-ping-start", daemon=True)
        self._start.start()

    def finish(self, event: Event, *, body: bytes = b"") -> list[str]:
        """Send the finish ping (after the start ping is through or given up); all warnings."""
        if self._start is not None:
            self._start.join(self.timeout + 1.0)
        warning = ping(self.url, event, run_id=self.run_id, body=body, timeout=self.timeout)
        return [*self.warnings, *([warning] if warning else [])]


def _send(target: str, body: bytes, deadline: float, attempt_timeout: float, attempts: int,
          sleep: Callable[[float], None]) -> str | None:
    import urllib.error
    import urllib.request

    problem = "no attempt made"
    for attempt in range(max(attempts, 1)):
        if attempt:
            pause = PAUSES[min(attempt - 1, len(PAUSES) - 1)]
            if time.monotonic() + pause >= deadline:
                break
            sleep(pause)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            request = urllib.request.Request(target, data=body, method="POST",
                                             headers={"User-Agent": USER_AGENT, "Content-Type": "text/plain"})
            with urllib.request.urlopen(request, timeout=min(attempt_timeout, left)) as answer:
                answer.read(4096)
            return None
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500:
                break
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            problem = str(reason) or type(reason).__name__
        except Exception as exc:  # noqa: BLE001  (http.client's own errors: a ping never raises)
            problem = f"{type(exc).__name__}: {exc}"
    return f"ping {_shown(target)} failed: {problem}"


def _shown(target: str) -> str:
    """The URL as warnings name it: scheme, host and the event, not the check's key or uuid
    (the path before the event), which lets anyone ping the check."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(target)
    head, _, last = parts.path.rstrip("/").rpartition("/")
    event = last if last in ("start", "fail", "log") or last.isdigit() else ""
    return urlunsplit((parts.scheme, parts.netloc, "/..." + (f"/{event}" if event else ""), "", ""))

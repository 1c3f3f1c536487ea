"""A real HTTP server on 127.0.0.1 for the ping tests: records what it is sent, answers as told."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

UUID = "5f0c1d2e-aaaa-4bbb-8ccc-123456789abc"


@dataclass
class Server:
    """What the server was sent, and how it answers: `statuses` in turn (then 200), or hang."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    hang: bool = False
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def serving() -> Iterator[Server]:
    """A server on a free loopback port, stopped at the end; its `url` ends with a check uuid."""
    state = Server()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.seen.append((self.command, self.path, body))
            if state.hang:
                state.release.wait(120)
                return
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/{UUID}"
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()

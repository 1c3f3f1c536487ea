"""A real `stepflow serve` on 127.0.0.1 for the tests: started on a free port, stopped after."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def serving(*args: str, env: dict[str, str] | None = None, timeout: float = 30.0) -> Iterator[Server]:
    """`stepflow serve --port 0 ARGS`; yields once it answers /api/health."""
    proc = subprocess.Popen([sys.executable, "-m", "stepflow", "serve", "--port", "0", *args],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()
        found = re.search(r"http://\S+?/", first)
        assert found, f"no address in {first!r}: {proc.stderr.read().decode()[:2000]}"
        server = Server(found.group(0).rstrip("/"), proc)
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(server.url + "/api/health?integrity=false", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

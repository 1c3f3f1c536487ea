"""Run the app under uvicorn on a socket bound beforehand (so `--port 0` can say its port)."""

from __future__ import annotations

import socket
from typing import Any

from stepflow.errors import UsageError


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host`:`port` (0: any free port).

    Raises:
        UsageError: the address cannot be had (in use, not this machine's, a bad name).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"--host {host}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(512)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def run(app: Any, sock: socket.socket, *, access_log: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; open event streams get two seconds to end."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=access_log, timeout_graceful_shutdown=2,
                            lifespan="on", proxy_headers=False, server_header=False)
    uvicorn.Server(config).run(sockets=[sock])

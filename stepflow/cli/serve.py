"""`stepflow serve`: the dashboard, JSON API, live events and /metrics over the store. Read-only."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from stepflow.cli.common import Storage, app, settings_for
from stepflow.errors import StepflowError


@app.command(epilog="Example: stepflow serve --port 8080, then open http://127.0.0.1:8080/")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; beyond loopback needs STEPFLOW_API_KEY or --no-auth.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free one).")] = 8080,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve a non-loopback address without an API key.")] = False,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request on stderr.")] = False,
    storage: Storage = None,
) -> None:
    """Serve the store over HTTP: dashboard at /, JSON API under /api/, Prometheus at /metrics."""
    from stepflow.serve import INSTALL_HINT

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise StepflowError(INSTALL_HINT) from None
    from stepflow.serve import server
    from stepflow.serve.app import create_app
    from stepflow.serve.auth import check_bind, is_loopback

    settings = settings_for(ctx, storage)
    key = settings.api_key
    check_bind(host, key=key, no_auth=no_auth)
    sock = server.bind(host, port)
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    auth = "API key required" if key else "no API key" + ("" if is_loopback(host) else " (--no-auth)")
    print(f"stepflow serve: http://{shown}:{bound[1]}/ ({auth}; store {settings.database})", file=sys.stderr, flush=True)
    server.run(create_app(settings, key=key, loopback_only=is_loopback(host)), sock, access_log=access_log)

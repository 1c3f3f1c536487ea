"""The ASGI app: routes, the auth gate, security headers, JSON errors, the watcher's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from stepflow.config import Settings
from stepflow.errors import StepflowError
from stepflow.serve import data, openapi, pages
from stepflow.serve.api import Api, ApiError, error_response, stepflow_status
from stepflow.serve.auth import COOKIE, Policy
from stepflow.serve.live import Hub

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
            " base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class Gate:
    """ASGI middleware: the auth policy, security headers, and no traceback ever."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            headers, query, cookies = request.headers, request.query_params, request.cookies
        except Exception:  # noqa: BLE001 - a malformed cookie or query string is the client's error
            await error_response(400, "malformed request")(scope, receive, send)
            return
        refused = self.policy.decide(method=scope["method"], path=scope["path"], headers=headers,
                                     query=query, cookies=cookies)
        if refused is not None:
            await error_response(*refused)(scope, receive, send)
            return
        set_cookie = bool(self.policy.key) and "token" in query and scope["method"] == "GET"

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                         (b"x-frame-options", b"DENY")]
                names = {k.lower() for k, _ in message.get("headers", [])}
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", PAGE_CSP.encode()))
                if set_cookie:
                    cookie: SimpleCookie = SimpleCookie()
                    cookie[COOKIE] = query["token"]
                    cookie[COOKIE]["httponly"] = True
                    cookie[COOKIE]["samesite"] = "Strict"
                    cookie[COOKIE]["path"] = "/"
                    extra.append((b"set-cookie", cookie[COOKIE].OutputString().encode("latin-1", "replace")))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings, *, key: str | None = None, loopback_only: bool = True,
               interval: float = 1.0, heartbeat: float = 15.0) -> Starlette:
    """The whole server over the store of `settings`. The hub waits on the store's Watch while the app runs."""
    src = data.Source(settings)
    hub = Hub(src, interval=interval, heartbeat=heartbeat)
    policy = Policy(key=key or None, loopback_only=loopback_only)
    api = Api(src, hub, limited=lambda r: policy.limited(r.headers, r.query_params, r.cookies))
    site = pages.Pages(src, hub)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(hub.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            src.close()

    async def spec(request: Request) -> Response:
        return JSONResponse(openapi.document())

    routes = [
        Route("/api/health", api.health, methods=["GET"]),
        Route("/api/health/metrics", api.health_metrics, methods=["GET"]),
        Route("/api/health/database", api.health_database, methods=["GET"]),
        Route("/api/health/optimize", api.optimize, methods=["POST"]),
        Route("/api/openapi.json", spec, methods=["GET"]),
        Route("/api/events", api.list_events, methods=["GET"]),
        Route("/api/executions", api.executions, methods=["GET"]),
        Route("/api/executions/active", api.active, methods=["GET"]),
        Route("/api/executions/statistics", api.statistics, methods=["GET"]),
        Route("/api/executions/{run_id}", api.execution, methods=["GET"]),
        Route("/api/executions/{run_id}/logs", api.logs, methods=["GET"]),
        Route("/api/executions/{run_id}/events", api.events, methods=["GET"]),
        Route("/api/executions/{run_id}/artifacts/{artifact_id}", api.artifact, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        *site.routes(),
    ]

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, str(exc))

    async def on_stepflow_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StepflowError)
        status = stepflow_status(exc)
        if not request.url.path.startswith(("/api/", "/metrics")):
            return site.error_page(status, str(exc))
        return error_response(status, str(exc))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: "no such path", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        if not request.url.path.startswith(("/api/", "/metrics")) and exc.status_code == 404:
            return site.error_page(404, "no such page")
        return error_response(exc.status_code, message)

    async def on_crash(request: Request, exc: Exception) -> Response:
        return error_response(500, f"internal error: {type(exc).__name__}")

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        ApiError: on_api_error, StepflowError: on_stepflow_error, HTTPException: on_http_error,
        Exception: on_crash,
    })
    app.state.hub = hub
    app.state.src = src
    app.add_middleware(Gate, policy=policy)  # type: ignore[arg-type]
    return app


def json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)

"""The JSON API at StepFlow Monitor's paths, plus /metrics. Read-only but for optimize.

Handlers are plain functions (Starlette runs them on its thread pool, each thread with its
own store connection); every error is a JSON body {"error": ...} with a 4xx status.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from stepflow.errors import NotFoundError, StepflowError, UsageError
from stepflow.serve import data, prom
from stepflow.serve.live import Hub, line_dict
from stepflow.store.base import RUN_STATUSES
from stepflow.timeparse import since_timestamp

MAX_LIMIT = 1000
MAX_LOG_LIMIT = 10000
HEALTH_CACHE_S = 5.0
RESPONSES_KEPT = 512
STREAMS = {"stdout": 1, "stderr": 2}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def stepflow_status(exc: StepflowError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, UsageError):
        return 400
    return 503  # the store cannot be read right now


# -- parameters --------------------------------------------------------------------------------

KNOWN = {
    "list": {"limit", "offset", "status", "name", "tag", "since", "token"},
    "logs": {"step", "stream", "after", "limit", "token"},
    "events": {"after", "token"},
    "stats": {"since", "name", "token"},
    "health": {"integrity", "token"},
    "none": {"token"},
}


def params(request: Request, kind: str) -> Mapping[str, str]:
    query = request.query_params
    unknown = sorted(set(query.keys()) - KNOWN[kind])
    if unknown:
        raise ApiError(400, f"unknown query parameter {unknown[0]!r}")
    for key in query.keys():
        if len(query.getlist(key)) > 1:
            raise ApiError(400, f"query parameter {key!r} given more than once")
    for key, value in query.items():
        if "\x00" in value or len(value) > 1000:
            raise ApiError(400, f"query parameter {key!r} is not a usable value")
    return query


def integer(query: Mapping[str, str], key: str, default: int, *, low: int, high: int) -> int:
    text = query.get(key)
    if text is None:
        return default
    stripped = text.strip()
    if not (stripped.lstrip("-").isascii() and stripped.lstrip("-").isdigit()) or stripped.count("-") > 1:
        raise ApiError(400, f"{key}={text!r} is not a whole number")
    value = int(stripped)
    if not low <= value <= high:
        raise ApiError(400, f"{key}={value} is not from {low} to {high}")
    return value


def boolean(query: Mapping[str, str], key: str, default: bool) -> bool:
    text = query.get(key)
    if text is None:
        return default
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ApiError(400, f"{key}={text!r} is not true or false")


def since(query: Mapping[str, str]) -> float | None:
    text = query.get("since")
    if text is None:
        return None
    try:
        return since_timestamp(text, option="since")
    except UsageError as exc:
        raise ApiError(400, str(exc)) from None


def text_param(query: Mapping[str, str], key: str) -> str | None:
    value = query.get(key)
    return value if value else None


# -- handlers ----------------------------------------------------------------------------------


class Api:
    """The handlers, over one data source and the live hub."""

    def __init__(self, src: data.Source, hub: Hub, *, limited: Callable[[Request], bool]) -> None:
        self.src = src
        self.hub = hub
        self.limited = limited
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._responses: OrderedDict[Any, tuple[int, bytes]] = OrderedDict()

    def cached(self, key: str, stamp: Any, compute: Callable[[], Any]) -> Any:
        hit = self._cache.get(key)
        if hit is not None and stamp is not None and hit[0] == stamp:  # None: freshness unknown
            return hit[1]
        value = compute()
        self._cache[key] = (stamp, value)
        return value

    async def respond(self, key: Any, compute: Callable[[], Any], *, media_type: str = "application/json") -> Response:
        """`compute()` on the thread pool, as JSON (or text); the body is kept until the store changes.

        The hub's Watch cursor says when: a body is reused only while no connection has
        committed since it was made (stale at most until the Watch notices: 0.15 s on SQLite).
        """
        stamp = self.hub.version
        hit = self._responses.get(key) if stamp is not None else None
        if hit is not None and hit[0] == stamp:
            self._responses.move_to_end(key)
            return Response(hit[1], media_type=media_type)
        value = await run_in_threadpool(compute)
        body = value.encode() if isinstance(value, str) else json.dumps(
            value, ensure_ascii=False, separators=(",", ":")).encode()
        if stamp is not None:
            self._responses[key] = (stamp, body)
            if len(self._responses) > RESPONSES_KEPT:
                self._responses.popitem(last=False)
        return Response(body, media_type=media_type)

    def health(self, request: Request) -> Response:
        query = params(request, "health")
        integrity = boolean(query, "integrity", True)
        report = self.cached(f"health{integrity}", int(time.monotonic() / HEALTH_CACHE_S),
                             lambda: data.health_report(self.src, integrity=integrity))
        status = 200 if report["healthy"] else 503
        if self.limited(request):
            return JSONResponse({"healthy": report["healthy"]}, status_code=status)
        return JSONResponse(report, status_code=status)

    def health_metrics(self, request: Request) -> Response:
        params(request, "none")
        counts = self.cached("counts", self.hub.version, lambda: data.counts_by_status(self.src))
        return JSONResponse({
            "runs": sum(counts.values()), "runs_by_status": counts,
            "active_runs": counts.get("running", 0) + counts.get("pending", 0),
            "live_clients": self.hub.clients, "followed_runs": len(self.hub.channels),
            "watch_polls": self.hub.polls, "watch_reads": self.hub.reads, "watch_interval_s": self.hub.interval,
            "uptime_s": round(time.time() - self.hub.started, 3), "watch_cursor": self.hub.version,
        })

    def health_database(self, request: Request) -> Response:
        params(request, "none")
        return JSONResponse(data.database_facts(self.src))

    def optimize(self, request: Request) -> Response:
        params(request, "none")
        return JSONResponse(data.optimize(self.src))

    async def executions(self, request: Request) -> Response:
        query = params(request, "list")
        status = text_param(query, "status")
        if status is not None and status not in RUN_STATUSES:
            raise ApiError(400, f"status={status!r} is not one of {', '.join(RUN_STATUSES)}")
        args = dict(status=status, name=text_param(query, "name"), tag=text_param(query, "tag"),
                    limit=integer(query, "limit", 50, low=1, high=MAX_LIMIT),
                    offset=integer(query, "offset", 0, low=0, high=data.MAX_OFFSET))
        ts = since(query)
        # A relative --since moves with the clock: such a list is not kept.
        key = ("list", *args.values()) if ts is None else object()
        return await self.respond(key, lambda: data.list_runs(self.src, since_ts=ts, **args))  # type: ignore[arg-type]

    async def active(self, request: Request) -> Response:
        params(request, "none")
        return await self.respond(("active",), lambda: data.active_runs(self.src))

    async def statistics(self, request: Request) -> Response:
        query = params(request, "stats")
        ts, name = since(query), text_param(query, "name")
        key = ("stats", name) if ts is None else object()
        return await self.respond(key, lambda: data.run_statistics(self.src, since_ts=ts, name=name))

    async def execution(self, request: Request) -> Response:
        params(request, "none")
        ref = request.path_params["run_id"]
        # `last` and prefixes resolve anew on every change, like everything else kept.
        return await self.respond(("run", ref), lambda: with_downloads(self.src, data.run_detail(self.src, ref)))

    def logs(self, request: Request) -> Response:
        query = params(request, "logs")
        run = data.resolve(self.src, request.path_params["run_id"])
        step = text_param(query, "step")
        stream = text_param(query, "stream")
        if stream is not None and stream not in STREAMS:
            raise ApiError(400, f"stream={stream!r} is not stdout or stderr")
        limit = integer(query, "limit", MAX_LOG_LIMIT, low=1, high=MAX_LOG_LIMIT)
        lines = data.log_lines(
            self.src, run.id, step_index=data.find_step(self.src, run, step) if step is not None else None,
            stream=STREAMS[stream] if stream else None, after=integer(query, "after", -1, low=-1, high=2**62),
            limit=limit + 1)
        more = len(lines) > limit
        lines = lines[:limit]
        out = [{k: v for k, v in line_dict(x).items() if k != "seg"} for x in lines]
        return JSONResponse({"id": run.id, "status": run.status, "lines": out, "more": more,
                             "next_after": lines[-1].number if lines else None})

    def artifact(self, request: Request) -> Response:
        params(request, "none")
        run = data.resolve(self.src, request.path_params["run_id"])
        path, name, mime = data.artifact_file(self.src, run.id, request.path_params["artifact_id"])
        # An attachment, sandboxed: an HTML artifact must not run as this site's page.
        return FileResponse(path, media_type=mime, filename=name, content_disposition_type="attachment",
                            headers={"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"})

    async def metrics(self, request: Request) -> Response:
        params(request, "none")
        return await self.respond(("metrics",), lambda: prom.render(
            data.job_facts(self.src), by_status=data.counts_by_status(self.src)), media_type=prom.CONTENT_TYPE)

    # -- live --------------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        query = params(request, "events")
        run = await run_in_threadpool(data.resolve, self.src, request.path_params["run_id"])
        last = request.headers.get("last-event-id")
        after = integer({"after": last} if last is not None else query, "after", -1, low=-1, high=2**62)
        return StreamingResponse(self.hub.run_events(run.id, after=after), media_type="text/event-stream",
                                 headers=SSE_HEADERS)

    async def list_events(self, request: Request) -> Response:
        params(request, "none")
        return StreamingResponse(self.hub.list_events(), media_type="text/event-stream", headers=SSE_HEADERS)


def with_downloads(src: data.Source, detail: dict[str, Any]) -> dict[str, Any]:
    """`show --json`, each artifact also with its id and download path."""
    from urllib.parse import quote

    ids = data.artifact_ids(src, detail["id"])
    for artifact, artifact_id in zip(detail["artifacts"], ids, strict=False):
        artifact["id"] = artifact_id
        artifact["url"] = f"/api/executions/{quote(detail['id'], safe='')}/artifacts/{quote(artifact_id, safe='')}"
    return detail


SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}

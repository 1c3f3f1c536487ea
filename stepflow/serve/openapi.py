"""The OpenAPI 3.0 document of the JSON API, served at /api/openapi.json. Pure."""

from __future__ import annotations

from typing import Any

from stepflow import __version__
from stepflow.store.base import RUN_STATUSES

ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
JSON_OBJ = {"application/json": {"schema": {"type": "object"}}}
JSON_LIST = {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/RunSummary"}}}}


def _q(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "A run id, a unique prefix of it (4+ characters), or 'last'."}
LIST_PARAMS = [
    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}, "At most this many runs."),
    _q("offset", {"type": "integer", "minimum": 0, "maximum": 100000, "default": 0}, "Skip this many."),
    _q("status", {"type": "string", "enum": list(RUN_STATUSES)}, "Only runs with this status."),
    _q("name", {"type": "string"}, "Only runs whose name matches this glob."),
    _q("tag", {"type": "string"}, "Only runs with this tag."),
    _q("since", {"type": "string"}, "Only runs created since 2h, 3d ago or a date (2025-08-01)."),
]


def _get(summary: str, *, parameters: list[dict[str, Any]] | None = None, ok: dict[str, Any] | None = None,
         codes: tuple[int, ...] = (400, 401, 403, 404, 503)) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": ok or JSON_OBJ}}
    responses.update({str(c): ERROR for c in codes})
    return {"get": {"summary": summary, "parameters": parameters or [], "responses": responses}}


def document() -> dict[str, Any]:
    health = _get("Healthy or not, with the facts of `stepflow health --json`; 503 when unhealthy.",
                  parameters=[_q("integrity", {"type": "boolean", "default": True}, "Run quick_check.")])
    health["get"]["responses"]["503"] = {"description": "unhealthy", "content": JSON_OBJ}
    return {
        "openapi": "3.0.3",
        "info": {"title": "stepflow serve", "version": __version__,
                 "description": "Read-only view of a stepflow store. Auth: `Authorization: Bearer KEY` or"
                                " `?token=KEY` when STEPFLOW_API_KEY is set."},
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error", "status"],
                          "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
                "RunSummary": {"type": "object", "required": ["id", "name", "status"],
                               "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                              "status": {"type": "string"}}},
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "token": {"type": "apiKey", "in": "query", "name": "token"}},
        },
        "security": [{}, {"bearer": []}, {"token": []}],
        "paths": {
            "/api/health": health,
            "/api/health/metrics": _get("Run counts and the watcher's own figures."),
            "/api/health/database": _get("`stepflow db stats --json`: files, pages, tables, settings."),
            "/api/health/optimize": {"post": {
                "summary": "ANALYZE and PRAGMA optimize (`stepflow db optimize`). Needs the key when one is set.",
                "responses": {"200": {"description": "OK", "content": JSON_OBJ},
                              **{str(c): ERROR for c in (400, 401, 403, 503)}}}},
            "/api/executions": _get("Runs, newest first (`stepflow ls --json`).", parameters=LIST_PARAMS, ok=JSON_LIST),
            "/api/executions/active": _get("Runs still running or pending.", ok=JSON_LIST),
            "/api/executions/statistics": _get(
                "Success rate and durations (mean, p50, p95), overall and by job name.",
                parameters=[_q("since", {"type": "string"}, "Only runs since."),
                            _q("name", {"type": "string"}, "Only this job name.")]),
            "/api/executions/{run_id}": _get("One run with its steps and artifacts (`stepflow show --json`).",
                                             parameters=[RUN_ID]),
            "/api/executions/{run_id}/logs": _get("Output lines in the order read.", parameters=[
                RUN_ID, _q("step", {"type": "string"}, "A step name, or its number (1 = first)."),
                _q("stream", {"type": "string", "enum": ["stdout", "stderr"]}, "Only one stream."),
                _q("after", {"type": "integer", "minimum": -1}, "Only lines numbered after this."),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "At most this many lines.")]),
            "/api/executions/{run_id}/events": _get(
                "Server-sent events: `lines`, `steps`, `run`, `end`; resumes from Last-Event-ID.",
                parameters=[RUN_ID, _q("after", {"type": "integer", "minimum": -1}, "Start after this line.")],
                ok={"text/event-stream": {"schema": {"type": "string"}}}),
            "/api/executions/{run_id}/artifacts/{artifact_id}": _get(
                "Download one artifact's stored file.",
                parameters=[RUN_ID, {"name": "artifact_id", "in": "path", "required": True,
                                     "schema": {"type": "string"}}],
                ok={"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}),
            "/metrics": _get("Prometheus text format: per job name last status, duration, success time,"
                             " consecutive failures, runs total.",
                             ok={"text/plain": {"schema": {"type": "string"}}}),
        },
    }

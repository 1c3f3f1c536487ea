"""The dashboard: server-rendered HTML pages over stepflow.serve.data, with a little JS for live updates.

Everything that came from a run (names, commands, output, metadata, tags) goes through
html.escape, and output through ansi.to_html; the CSP allows scripts only from /static/.
"""

from __future__ import annotations

import time
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from stepflow import fmt
from stepflow.errors import UsageError
from stepflow.history.detail import parse_time
from stepflow.serve import data
from stepflow.serve.ansi import to_html
from stepflow.serve.charts import history_chart, timeline_bar
from stepflow.serve.live import Hub
from stepflow.store.base import OPEN_STATUSES, RUN_STATUSES, STDERR
from stepflow.timeparse import since_timestamp

PAGE_LINES = 5000  # lines of a run's log put in the page; the API has them all
STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def status_badge(status: str | None) -> str:
    return f'<span class="badge st-{e(status)}" data-status>{e(status)}</span>'


def ts_of(text: str | None) -> float | None:
    value = parse_time(text)
    return value.timestamp() if value else None


def when(text: str | None) -> str:
    value = parse_time(text)
    if value is None:
        return "-"
    local = value.astimezone()
    return f'<time datetime="{e(local.isoformat())}">{e(local.strftime("%Y-%m-%d %H:%M:%S"))}</time>'


def run_link(run_id: str, text: str | None = None) -> str:
    return f'<a href="/runs/{quote(run_id, safe="")}">{e(text or run_id[:8])}</a>'


def job_link(name: str) -> str:
    return f'<a href="/job?{urlencode({"name": name})}">{e(name)}</a>'


def layout(title: str, body: str, *, page: str, attrs: str = "") -> HTMLResponse:
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · stepflow</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head><body class="page-{page}"{attrs}>
<header class="top"><a class="brand" href="/">stepflow</a><nav><a href="/">Runs</a>
<a href="/api/openapi.json">API</a><a href="/metrics">Metrics</a></nav></header>
<main>{body}</main></body></html>"""
    return HTMLResponse(doc)


class Pages:
    def __init__(self, src: data.Source, hub: Hub) -> None:
        self.src = src
        self.hub = hub

    def routes(self) -> list[Route]:
        return [Route("/", self.runs_page, methods=["GET"]), Route("/runs/{run_id}", self.run_page, methods=["GET"]),
                Route("/job", self.job_page, methods=["GET"]), Route("/static/{name}", self.static, methods=["GET"])]

    def error_page(self, status: int, message: str) -> Response:
        response = layout(f"Error {status}", f'<section class="card error"><h1>{status}</h1><p>{e(message)}</p>'
                                             f'<p><a href="/">All runs</a></p></section>', page="error")
        response.status_code = status
        return response

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return self.error_page(404, "no such file")
        body = resources.files("stepflow.serve").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=300"})

    # -- the runs list -----------------------------------------------------------------------

    async def runs_page(self, request: Request) -> Response:
        q = request.query_params
        status = q.get("status") or None
        if status is not None and status not in RUN_STATUSES:
            raise UsageError(f"status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        name, tag, since = q.get("name") or None, q.get("tag") or None, q.get("since") or None
        page = int(q["page"]) if q.get("page", "").isdigit() and len(q["page"]) < 6 else 0
        ts = since_timestamp(since, option="since") if since else None
        runs = await run_in_threadpool(data.list_runs, self.src, status=status, name=name, tag=tag, since_ts=ts,
                                       limit=50, offset=page * 50)
        options = "".join(f'<option value="{s}"{" selected" if s == status else ""}>{s}</option>'
                          for s in ("", *RUN_STATUSES))
        form = f"""<form class="filters" method="get" action="/">
<label>Status <select name="status">{options}</select></label>
<label>Name <input name="name" value="{e(name)}" placeholder="deploy*"></label>
<label>Tag <input name="tag" value="{e(tag)}"></label>
<label>Since <input name="since" value="{e(since)}" placeholder="1d"></label>
<button type="submit">Filter</button></form>"""
        rows = "".join(self._run_row(r) for r in runs) or '<tr class="empty"><td colspan="6">No runs match.</td></tr>'
        filtered = any((status, name, tag, since, page))
        more = ""
        if len(runs) == 50 or page:
            args = {k: v for k, v in (("status", status), ("name", name), ("tag", tag), ("since", since)) if v}
            prev = f'<a href="/?{urlencode({**args, "page": page - 1})}">Newer</a>' if page else ""
            nxt = f'<a href="/?{urlencode({**args, "page": page + 1})}">Older</a>' if len(runs) == 50 else ""
            more = f'<nav class="pager">{prev} {nxt}</nav>'
        body = f"""<h1>Runs <span class="live-dot" title="live"></span></h1>{form}
<div class="table-wrap"><table class="runs"><thead><tr><th>Status</th><th>Name</th><th class="opt">Run</th>
<th>Steps</th><th>Duration</th><th class="opt">Started</th></tr></thead>
<tbody id="runs">{rows}</tbody></table></div>{more}"""
        return layout("Runs", body, page="list", attrs=f' data-live-new="{0 if filtered else 1}"')

    @staticmethod
    def _run_row(r: dict[str, Any]) -> str:
        return (f'<tr data-id="{e(r["id"])}"><td>{status_badge(r["status"])}</td><td class="name">{job_link(r["name"])}'
                f'</td><td class="opt mono">{run_link(r["id"])}</td><td data-steps>{r["completed_steps"]}/{r["total_steps"]}'
                f'</td><td data-duration>{e(fmt.duration(r["duration_s"]))}</td><td class="opt">'
                f'{when(r["started_at"] or r["created_at"])}</td></tr>')

    # -- one run -----------------------------------------------------------------------------

    async def run_page(self, request: Request) -> Response:
        ref = request.path_params["run_id"]
        detail, lines, usual, total = await run_in_threadpool(self._run_data, ref)
        return layout(detail["name"], self._run_body(detail, lines, usual, total), page="run",
                      attrs=f' data-run-id="{e(detail["id"])}" data-after="{lines[-1].number if lines else -1}"'
                            f' data-open="{1 if detail["status"] in OPEN_STATUSES else 0}"')

    def _run_data(self, ref: str) -> tuple[dict[str, Any], list[Any], dict[str, float], int]:
        from stepflow.serve.api import with_downloads

        detail = with_downloads(self.src, data.run_detail(self.src, ref))
        total = detail.get("line_count") or 0
        after = max(-1, total - PAGE_LINES - 1) if detail["status"] not in OPEN_STATUSES else -1
        lines = data.log_lines(self.src, detail["id"], after=after)
        if len(lines) > PAGE_LINES:
            lines = lines[-PAGE_LINES:]
        usual = data.usual_step_seconds(self.src, detail["name"], exclude=detail["id"])
        return detail, lines, usual, max(total, len(lines))

    def _run_body(self, d: dict[str, Any], lines: list[Any], usual: dict[str, float], total: int) -> str:
        tags = "".join(f'<span class="tag">{e(t)}</span>' for t in d.get("tags") or [])
        facts = [("Run", f'<span class="mono">{e(d["id"])}</span>'), ("Started", when(d["started_at"])),
                 ("Ended", when(d["completed_at"])),
                 ("Duration", f'<span data-run-duration>{e(fmt.duration(d["duration_s"]))}</span>'),
                 ("Exit code", e(d["exit_code"] if d["exit_code"] is not None else "-")),
                 ("Host", e(f'{d.get("user") or "?"}@{d.get("host") or "?"}')), ("Directory", e(d["working_directory"]))]
        if d.get("error_message"):
            facts.append(("Error", f'<span class="err-text">{e(d["error_message"])}</span>'))
        dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
        head = (f'<section class="card run-head"><div class="title-row"><h1>{job_link(d["name"])}</h1>'
                f'<span id="run-status">{status_badge(d["status"])}</span></div>'
                f'<pre class="command">{e(d["command"])}</pre>{tags}<dl class="facts">{dl}</dl></section>')
        return head + self._timeline(d, usual) + self._log(d, lines, total) + self._artifacts(d)

    def _timeline(self, d: dict[str, Any], usual: dict[str, float]) -> str:
        steps = d["steps"]
        if not steps:
            return ""
        origin = ts_of(d["started_at"]) or ts_of(steps[0]["started_at"]) or time.time()
        end = ts_of(d["completed_at"]) or max([ts_of(s["completed_at"]) or 0 for s in steps] + [time.time()])
        span = max(end - origin, 0.001)
        rows = []
        for s in steps:
            seconds, typical = s["duration_s"], usual.get(s["name"])
            versus = ""
            if seconds is not None and typical is not None and typical >= 0.1:  # noise below
                change = (seconds - typical) / typical * 100
                cls = "slower" if change > 20 else "faster" if change < -20 else "same"
                versus = f'<span class="vs {cls}">{change:+.0f}%</span>'
            error = f'<div class="err-text">{e(s["error_message"])}</div>' if s.get("error_message") else ""
            meta = "".join(f'<span class="meta">{e(k)}={e(v)}</span>' for k, v in (s.get("metadata") or {}).items())
            rows.append(
                f'<tr data-step="{s["index"]}"><td class="num">{s["index"] + 1}</td>'
                f'<td class="name"><a href="#step-{s["index"]}">{e(s["name"])}</a>'
                f'{error}{meta}</td>'
                f'<td>{status_badge(s["status"])}</td><td class="dur" data-duration>{e(fmt.duration(seconds))}</td>'
                f'<td class="usual opt">{e(fmt.duration(typical)) if typical is not None else "-"} {versus}</td>'
                f'<td class="bar-cell opt">{timeline_bar(ts_of(s["started_at"]), ts_of(s["completed_at"]), origin=origin, span=span, status=s["status"])}</td></tr>')
        return (f'<section class="card"><h2>Steps</h2><div class="table-wrap"><table class="steps" id="steps"><thead><tr>'
                f'<th>#</th><th>Step</th><th>Status</th><th>Took</th><th class="opt">Usual</th><th class="opt">Timeline</th>'
                f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div></section>')

    def _log(self, d: dict[str, Any], lines: list[Any], total: int) -> str:
        names = {s["index"]: s["name"] for s in d["steps"]}
        groups: list[tuple[int | None, list[str]]] = []
        for line in lines:
            if not groups or groups[-1][0] != line.step_index:
                groups.append((line.step_index, []))
            cls = "ln err" if line.stream == STDERR else "ln"
            cut = f' <span class="cut">[{line.cut:,} more bytes not kept]</span>' if line.cut else ""
            groups[-1][1].append(f'<div class="{cls}" data-n="{line.number}">{to_html(line.text)}{cut}</div>')
        parts = []
        for index, rendered in groups:
            label = e(names.get(index, "step")) if index is not None else "before the first step"
            anchor = f' id="step-{index}"' if index is not None else ""
            parts.append(f'<details open class="log-group" data-step="{"" if index is None else index}"{anchor}>'
                         f'<summary><span class="step-label">{label}</span> <span class="muted count">{len(rendered)} lines'
                         f'</span></summary><pre class="log">{"".join(rendered)}</pre></details>')
        note = ""
        if total > len(lines):
            note = (f'<p class="muted">Showing the last {len(lines):,} of {total:,} lines; all of them:'
                    f' <a href="/api/executions/{quote(d["id"], safe="")}/logs">the logs API</a>.</p>')
        empty = '<p class="muted" id="log-empty">No output yet.</p>' if not lines else ""
        return (f'<section class="card"><h2>Output <label class="follow"><input type="checkbox" id="follow" checked>'
                f' follow</label></h2>{note}{empty}<div id="log">{"".join(parts)}</div>'
                f'<p class="muted" id="live-note"></p></section>')

    def _artifacts(self, d: dict[str, Any]) -> str:
        if not d["artifacts"]:
            return ""
        rows = []
        for a in d["artifacts"]:
            link = f'<a download href="{e(a["url"])}">{e(a["name"])}</a>' if a.get("path") and a.get("url") else e(a["name"])
            rows.append(f'<tr><td>{link}</td><td>{e(a.get("step") or "-")}</td><td>{e(_size(a.get("size")))}</td>'
                        f'<td class="mono opt">{e((a.get("sha256") or "")[:12])}</td></tr>')
        return (f'<section class="card"><h2>Artifacts</h2><div class="table-wrap"><table class="artifacts"><thead><tr>'
                f'<th>Name</th><th>Step</th><th>Size</th><th class="opt">sha256</th></tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table></div></section>')

    # -- one job -----------------------------------------------------------------------------

    async def job_page(self, request: Request) -> Response:
        name = request.query_params.get("name")
        if not name:
            raise UsageError("say which job: /job?name=NAME")
        runs, stats, steps = await run_in_threadpool(self._job_data, name)
        if not runs:
            return self.error_page(404, f"no runs named {name!r}")
        rate = stats["success_rate"]
        cards = "".join(f'<div class="stat"><div class="k">{k}</div><div class="v">{v}</div></div>' for k, v in (
            ("Runs", e(stats["runs"])), ("Success rate", e(f"{rate * 100:.0f}%" if rate is not None else "-")),
            ("p50", e(fmt.duration(stats["duration_s"]["p50"]))), ("p95", e(fmt.duration(stats["duration_s"]["p95"])))))
        overall = history_chart([(r["id"][:8], r["duration_s"], r["status"]) for r in reversed(runs)],
                                title="Run duration, oldest to newest")
        charts = "".join(history_chart(points, title=f"{i}. {step}", height=70)
                         for i, (step, points) in enumerate(steps.items(), start=1))
        rows = "".join(self._run_row(r) for r in runs[:30])
        body = (f'<h1>{e(name)}</h1><section class="stats">{cards}</section><section class="card">{overall}</section>'
                f'<section class="card"><h2>Steps over the latest completed runs</h2><div class="charts">{charts or "<p class=muted>None.</p>"}</div>'
                f'</section><section class="card"><h2>Latest runs</h2><div class="table-wrap"><table class="runs"><thead>'
                f'<tr><th>Status</th><th>Name</th><th class="opt">Run</th><th>Steps</th><th>Duration</th>'
                f'<th class="opt">Started</th></tr></thead><tbody>{rows}</tbody></table></div></section>')
        return layout(name, body, page="job")

    def _job_data(self, name: str) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, list[Any]]]:
        runs = data.job_runs(self.src, name, limit=100)
        stats = data.run_statistics(self.src, name=name)
        rows = [r for r in reversed(data.step_history(self.src, name, runs=50)) if r.name is not None]
        order: dict[str, int] = {}
        for row in rows:
            order[str(row.name)] = min(order.get(str(row.name), 1 << 30), row.step_index if row.step_index is not None else 0)
        steps: dict[str, list[tuple[str, float | None, str]]] = {n: [] for n in sorted(order, key=lambda n: order[n])}
        for row in rows:
            steps[str(row.name)].append((row.run_id[:8], row.seconds, row.status or "completed"))
        return runs, stats, steps


def _size(n: int | None) -> str:
    if not n:
        return "0 B"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"

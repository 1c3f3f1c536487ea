"""`stepflow serve`: the JSON API, auth, artifacts, /metrics, against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import apsw
import httpx
import pytest

from tests.conftest import StepflowRunner, py
from tests.serving import serving

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

JOB = """
import sys
print("STEP_START:build")
print("\\x1b[32mgreen\\x1b[0m compiled")
print("STEP_COMPLETE:build")
print("STEP_START:ship")
open(sys.argv[1], "w").write("artifact body")
print("ARTIFACT:" + sys.argv[1])
print("shipped")
print("oops", file=sys.stderr, flush=True)
"""


@pytest.fixture
def recorded(stepflow: StepflowRunner, tmp_path: Path) -> dict[str, str]:
    """Two runs: `job` completed with an artifact, `bad` failed."""
    ok = stepflow("run", "--name", "job", "--tag", "nightly", "--", *py(JOB), str(tmp_path / "out.txt"))
    assert ok.returncode == 0, ok.stderr
    bad = stepflow("run", "--name", "bad", "--", *py("import sys; print('STEP_START:x'); sys.exit(3)"))
    assert bad.returncode == 3
    listed = json.loads(stepflow("ls", "--json").stdout)
    return {r["name"]: r["id"] for r in listed}


def test_lists_runs_as_ls_json_prints_them(recorded: dict[str, str], stepflow: StepflowRunner) -> None:
    with serving() as server:
        got = server.get("/api/executions").json()
        assert got == json.loads(stepflow("ls", "--json").stdout)
        assert [r["name"] for r in server.get("/api/executions?status=failed").json()] == ["bad"]
        assert [r["name"] for r in server.get("/api/executions?tag=nightly").json()] == ["job"]
        assert [r["name"] for r in server.get("/api/executions?name=j*").json()] == ["job"]
        assert [r["name"] for r in server.get("/api/executions?limit=1&offset=1").json()] == ["job"]
        assert server.get("/api/executions?since=1h").json() == got
        assert server.get("/api/executions/active").json() == []


def test_one_run_is_show_json_with_download_links(recorded: dict[str, str], stepflow: StepflowRunner) -> None:
    run_id = recorded["job"]
    shown = json.loads(stepflow("show", run_id, "--json").stdout)
    with serving() as server:
        got = server.get(f"/api/executions/{run_id[:8]}").json()
        for artifact in got["artifacts"]:  # `show --json` has each artifact's id; the API adds where to get it
            assert artifact.pop("url") == f"/api/executions/{run_id}/artifacts/{artifact['id']}"
        assert got == shown
        download = server.get(server.get(f"/api/executions/{run_id}").json()["artifacts"][0]["url"])
        assert download.status_code == 200 and download.content == b"artifact body"
        assert "attachment" in download.headers["content-disposition"]
        assert download.headers["content-security-policy"] == "sandbox"


def test_logs_filter_by_step_stream_and_after(recorded: dict[str, str]) -> None:
    run_id = recorded["job"]
    with serving() as server:
        lines = server.get(f"/api/executions/{run_id}/logs").json()["lines"]
        # Two pipes: the order of stderr against stdout is the order stepflow read them in.
        assert sorted(x["text"] for x in lines) == ["\x1b[32mgreen\x1b[0m compiled", "oops", "shipped"]
        assert [x["text"] for x in server.get(f"/api/executions/{run_id}/logs?stream=stderr").json()["lines"]] == ["oops"]
        assert sorted(x["text"] for x in server.get(f"/api/executions/{run_id}/logs?step=ship").json()["lines"]) == ["oops", "shipped"]
        assert [x["text"] for x in server.get(f"/api/executions/{run_id}/logs?step=1").json()["lines"]] == ["\x1b[32mgreen\x1b[0m compiled"]
        page = server.get(f"/api/executions/{run_id}/logs?after={lines[0]['n']}&limit=1").json()
        assert [x["text"] for x in page["lines"]] == [lines[1]["text"]] and page["more"] is True
        assert server.get(f"/api/executions/{run_id}/logs?step=nope").status_code == 404


@pytest.mark.parametrize("path, status", [
    ("/api/executions?limit=0", 400), ("/api/executions?limit=x", 400), ("/api/executions?status=done", 400),
    ("/api/executions?since=yesterday", 400), ("/api/executions?bogus=1", 400), ("/api/executions/abc", 400),
    ("/api/executions/ffffffff", 404), ("/api/executions/last/logs?stream=tty", 400), ("/api/nope", 404),
    ("/api/executions/last/artifacts/nope", 404), ("/api/executions?limit=1&limit=2", 400),
])
def test_bad_requests_get_a_json_error(recorded: dict[str, str], path: str, status: int) -> None:
    with serving() as server:
        response = server.get(path)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"] and "Traceback" not in response.text


def test_an_artifact_row_pointing_outside_the_store_is_not_served(recorded: dict[str, str], db_path: Path) -> None:
    conn = apsw.Connection(str(db_path))
    conn.execute("UPDATE artifacts SET file_path = '/etc/passwd'")
    conn.close()
    with serving() as server:
        detail = server.get(f"/api/executions/{recorded['job']}").json()
        response = server.get(detail["artifacts"][0]["url"])
        assert response.status_code == 404 and "root:" not in response.text


def test_health_is_200_healthy_503_not(recorded: dict[str, str], stepflow: StepflowRunner) -> None:
    cli = json.loads(stepflow("health", "--json").stdout)
    with serving() as server:
        response = server.get("/api/health")
        assert response.status_code == 200
        got = response.json()
        assert {k: v for k, v in got.items() if k != "checked_at"} | {"checks": {}} == \
            {k: v for k, v in cli.items() if k != "checked_at"} | {"checks": {}}
        assert set(got["checks"]) == set(cli["checks"])
        assert server.get("/api/health/database").json()["tables"]["executions"] == 2
        assert server.get("/api/health/metrics").json()["runs"] == 2


def test_health_without_a_store_is_503(tmp_path: Path) -> None:
    with serving() as server:
        response = server.get("/api/health")
        assert response.status_code == 503 and response.json()["healthy"] is False
        assert server.get("/api/executions").status_code == 503


def test_statistics_and_prometheus_metrics(recorded: dict[str, str], stepflow: StepflowRunner) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    assert stepflow("run", "--name", "bad", "--", "false").returncode == 1
    with serving() as server:
        stats = server.get("/api/executions/statistics").json()
        assert stats["runs"] == 3 and stats["success_rate"] == pytest.approx(1 / 3, abs=1e-3)
        jobs = {j["name"]: j for j in stats["jobs"]}
        assert jobs["job"]["success_rate"] == 1.0 and jobs["job"]["duration_s"]["p50"] > 0
        assert jobs["bad"]["by_status"] == {"failed": 2}
        response = server.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(response.text) for s in family.samples}
    assert samples[("stepflow_job_consecutive_failures", (("job", "bad"),))] == 2
    assert samples[("stepflow_job_consecutive_failures", (("job", "job"),))] == 0
    assert samples[("stepflow_job_last_status", (("job", "bad"), ("status", "failed")))] == 1
    assert samples[("stepflow_job_last_success", (("job", "job"),))] == 1
    assert samples[("stepflow_job_runs_total", (("job", "bad"), ("status", "failed")))] == 2
    assert ("stepflow_job_last_success_timestamp_seconds", (("job", "job"),)) in samples
    assert ("stepflow_job_last_success_timestamp_seconds", (("job", "bad"),)) not in samples
    assert samples[("stepflow_job_last_duration_seconds", (("job", "job"),))] > 0


def test_metrics_escape_hostile_job_names(stepflow: StepflowRunner) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    name = 'a"b\\c\nd} x{'
    assert stepflow("run", "--name", name, "--", "true").returncode == 0
    with serving() as server:
        text = server.get("/metrics").text
    jobs = {s.labels.get("job") for f in text_string_to_metric_families(text) for s in f.samples}
    assert name in jobs


def test_a_non_loopback_address_needs_a_key_or_no_auth(stepflow: StepflowRunner) -> None:
    result = stepflow("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.decode().startswith("stepflow: error: --host 0.0.0.0 is reachable from other machines")


def test_with_a_key_every_path_needs_it_but_health_says_only_healthy(recorded: dict[str, str]) -> None:
    key = "s3cret-key"
    with serving(env={"STEPFLOW_API_KEY": key}) as server:
        assert server.get("/api/executions").status_code == 401
        assert server.get("/").status_code == 401
        assert server.get("/api/executions", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert server.get("/api/executions", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert server.get(f"/api/executions?token={key}").status_code == 200
        assert server.get("/api/health").json() == {"healthy": True}
        assert "checks" in server.get("/api/health", headers={"Authorization": f"Bearer {key}"}).json()
        assert httpx.post(server.url + "/api/health/optimize", timeout=30).status_code == 401
        done = httpx.post(server.url + "/api/health/optimize", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert done.status_code == 200 and "seconds" in done.json()
        # The dashboard keeps the key as a cookie after a ?token= visit, so its links work.
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get(f"/?token={key}").status_code == 200
            assert client.get(f"/runs/{recorded['job']}").status_code == 200


def test_the_api_key_is_a_setting_never_shown() -> None:
    from stepflow.config import API_KEY, load_settings

    settings = load_settings({API_KEY: "s3cret-key", "HOME": "/tmp"})
    assert API_KEY == "STEPFLOW_API_KEY" and settings.api_key == "s3cret-key"
    assert "s3cret-key" not in repr(settings)
    assert load_settings({API_KEY: "", "HOME": "/tmp"}).api_key is None


def test_loopback_refuses_foreign_host_and_cross_site_posts(recorded: dict[str, str]) -> None:
    with serving() as server:
        assert server.get("/api/executions", headers={"Host": "evil.example"}).status_code == 403
        assert server.get("/api/executions", headers={"Host": "localhost:1234"}).status_code == 200
        cross = httpx.post(server.url + "/api/health/optimize", headers={"Origin": "http://evil.example"}, timeout=30)
        assert cross.status_code == 403
        other_port = httpx.post(server.url + "/api/health/optimize", headers={"Origin": "http://127.0.0.1:1"}, timeout=30)
        assert other_port.status_code == 403
        same = httpx.post(server.url + "/api/health/optimize", headers={"Origin": server.url}, timeout=30)
        assert same.status_code == 200
        assert httpx.post(server.url + "/api/health/optimize", timeout=30).status_code == 200
        assert httpx.get(server.url + "/api/health/optimize", timeout=30).status_code == 405


def test_pages_carry_a_strict_content_security_policy(recorded: dict[str, str]) -> None:
    with serving() as server:
        for path in ("/", f"/runs/{recorded['job']}", "/job?name=job"):
            response = server.get(path)
            assert response.status_code == 200, path
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert "<script>" not in response.text
        assert server.get("/runs/ffffffff").status_code == 404
        assert server.get("/static/app.js").headers["content-type"].startswith("text/javascript")
        assert server.get("/static/../data.py").status_code == 404


def test_a_missing_extra_is_one_line_naming_it() -> None:
    code = ("import sys; sys.modules['starlette'] = None; from stepflow.cli import main;"
            " sys.exit(main(['serve', '--port', '0']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.decode() == "stepflow: error: stepflow serve needs its extra: pip install 'stepflow[serve]'\n"


def test_stepflow_run_imports_no_server_module() -> None:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "stepflow", "run", "--", "true"],
                            capture_output=True, timeout=60)
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert "stepflow" in {line.split("|")[-1].strip() for line in result.stderr.decode().splitlines()}
    assert not imported & {"starlette", "uvicorn", "anyio", "httpx"}

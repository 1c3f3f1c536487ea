"""Property-based fuzz of the API from its own OpenAPI document (schemathesis, positive and negative
cases): every request, well-formed or not, gets an answer below 500, and every 4xx is a JSON error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402

from stepflow.serve import openapi  # noqa: E402
from tests.serving import Server, serving  # noqa: E402

schema = schemathesis.openapi.from_dict(openapi.document())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("fuzz") / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFLOW_")} | {"STEPFLOW_STORAGE_PATH": str(folder)}
    art = Path(folder.parent / "a.txt")
    art.write_text("artifact")
    for args in (["--name", "job", "--tag", "t", "--", sys.executable, "-c",
                  f"print('STEP_START:s'); print('ARTIFACT:{art}'); print('x')"],
                 ["--name", "bad", "--", "false"]):
        subprocess.run([sys.executable, "-m", "stepflow", "run", *args], env=env, capture_output=True, timeout=60,
                       check=False)
    with serving(env=env) as running:
        yield running


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: object, server: Server) -> None:
    response = case.call(base_url=server.url, timeout=30)  # type: ignore[attr-defined]
    assert response.status_code < 500 or (response.status_code == 503 and case.path == "/api/health"), (  # type: ignore[attr-defined]
        response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    if 400 <= response.status_code < 500:
        kind = response.headers.get("content-type") or [""]
        assert (kind[0] if isinstance(kind, list) else kind).startswith("application/json")
        assert isinstance(response.json()["error"], str)

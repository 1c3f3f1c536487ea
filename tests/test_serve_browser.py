"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a real
`stepflow serve` on 127.0.0.1 over runs recorded with `stepflow run`.

Skips when chromium or Playwright is absent (.ci/run installs both). Set SERVE_SCREENSHOTS=DIR
to keep the screenshots (docs/screenshots/ holds the ones in the README).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import EXAMPLES, StepflowRunner, py
from tests.serving import serving
from tests.test_serve_live import waiting_job

pytest.importorskip("starlette")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"no {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
HOSTILE = ('<script>window.pwned=1</script>', '<img src=x onerror="window.pwned=2">')
HOSTILE_NAME = '<img src=x onerror="window.pwned=3">'  # the run's (job's) name
HOSTILE_JOB = f"""
import sys
print("STEP_START:" + {HOSTILE[0]!r})
print("\\x1b[1;32mbuilt\\x1b[0m <b>not bold</b> " + {HOSTILE[1]!r})
print("a warning", file=sys.stderr)
print("STEP_START:" + {HOSTILE[1]!r})
print("META:" + {HOSTILE[1]!r} + ":x")
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, errors


def shot(pg: Any, name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("SERVE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


@pytest.fixture
def history(stepflow: StepflowRunner) -> dict[str, str]:
    for _ in range(3):
        assert stepflow("run", "--tag", "prod", "--", "bash", str(EXAMPLES / "deploy.sh")).returncode == 0
    assert stepflow("run", "--name", "nightly-backup", "--", *py("print('STEP_START:dump'); raise SystemExit(2)")).returncode == 2
    assert stepflow("run", "--name", HOSTILE_NAME, "--", *py(HOSTILE_JOB)).returncode == 0
    import json

    return {r["name"]: r["id"] for r in json.loads(stepflow("ls", "--json").stdout)}


def test_runs_list_and_filters(history: dict[str, str], page: Any, tmp_path: Path, stepflow: StepflowRunner) -> None:
    with serving() as server:
        page.goto(server.url + "/")
        rows = page.locator("#runs tr[data-id]")
        assert rows.count() == 5
        page.wait_for_selector(".live-dot.on")
        shot(page, "list", tmp_path)
        assert stepflow("run", "--name", "arrives-live", "--", "true").returncode == 0
        page.wait_for_selector("#runs tr[data-id]:first-child:has-text('arrives-live')", timeout=60_000)
        assert page.evaluate("window.pwned") is None
        page.select_option("select[name=status]", "failed")
        page.click("button[type=submit]")
        page.wait_for_url("**/?status=failed**")
        assert page.locator("#runs tr[data-id]").count() == 1
        assert "nightly-backup" in page.inner_text("#runs")
        assert HOSTILE_NAME not in page.inner_text("#runs")


def test_run_page_steps_log_and_artifact_download(history: dict[str, str], page: Any, tmp_path: Path) -> None:
    run_id = history["deploy.sh"]
    with serving() as server:
        page.goto(f"{server.url}/runs/{run_id}")
        assert page.locator("#steps tbody tr").count() == 5
        assert page.locator("#steps tr[data-step='1'] .usual").inner_text().strip().endswith("%")  # vs earlier runs
        assert page.locator(".ln.err").count() == 1 and "deprecated" in page.inner_text(".ln.err")
        page.click("details.log-group[data-step='1'] > summary")  # collapse the build step's lines
        assert not page.locator("details.log-group[data-step='1']").evaluate("d => d.open")
        shot(page, "run", tmp_path)
        with page.expect_download() as info:
            page.click("text=report.html")
        download = info.value
        assert Path(download.path()).read_text() == "<html><body>build ok</body></html>\n"
        page.goto(f"{server.url}/job?name=deploy.sh")
        assert page.locator("figure.chart").count() >= 6
        assert "100%" in page.inner_text(".stats")
        shot(page, "job", tmp_path)


def test_hostile_names_and_output_are_inert(history: dict[str, str], page: Any) -> None:
    with serving() as server:
        job = urlencode({"name": HOSTILE_NAME})
        for path in ("/", f"/runs/{history[HOSTILE_NAME]}", f"/job?{job}"):
            page.goto(server.url + path)
            assert page.evaluate("window.pwned") is None
            assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
        page.goto(f"{server.url}/runs/{history[HOSTILE_NAME]}")
        body = page.inner_text("main")
        assert HOSTILE[0] in body and HOSTILE[1] in body and "<b>not bold</b>" in body and HOSTILE_NAME in body
        assert page.locator(".ln .b.fg-2").inner_text() == "built"
        assert page.locator("main b").count() == 0


def test_phone_width(history: dict[str, str], browser: Any, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2, is_mobile=True)
    pg = context.new_page()
    try:
        with serving() as server:
            for path, name in (("/", "phone-list"), (f"/runs/{history['deploy.sh']}", "phone-run")):
                pg.goto(server.url + path)
                assert pg.evaluate("document.documentElement.scrollWidth") <= 375, path
                shot(pg, name, tmp_path)
    finally:
        context.close()


def test_live_tail_receives_a_line_printed_while_the_page_is_open(page: Any, tmp_path: Path) -> None:
    with waiting_job(tmp_path, name="tail-me") as (run_id, feed), serving() as server:
        page.goto(f"{server.url}/runs/{run_id}")
        page.wait_for_selector(".ln:has-text('first')")
        assert page.locator("#run-status [data-status]").inner_text() == "running"
        page.wait_for_function("document.getElementById('live-note').textContent.startsWith('Live')")
        feed.write("\x1b[31mprinted while you watch\x1b[0m\n")
        feed.flush()
        page.wait_for_selector(".ln:has-text('printed while you watch')", timeout=60_000)
        assert page.locator(".ln .fg-1").inner_text() == "printed while you watch"
        shot(page, "live", tmp_path)
        feed.close()
        page.wait_for_selector("body[data-ended='1']", timeout=60_000)
        assert page.locator("#run-status [data-status]").inner_text() == "completed"
        assert "last" in page.inner_text("#log")

"""The Prometheus textfile: exposition format checked by prometheus_client's parser and by
promtool when installed; written atomically; figures from a real store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepflow.config import load_settings
from stepflow.cron import query
from stepflow.cron.prom import (
    FILE_NAME,
    LOCK_NAME,
    JobMetrics,
    escape_label,
    job_metrics,
    render,
    update_textfile,
    write_textfile,
)
from stepflow.store import open_store
from tests.conftest import StepflowRunner, wait_for

JOBS = [
    JobMetrics("backup-db", "failed", 3, 12.5, 1_764_000_000.0, 1_763_990_000.5, 2, 40),
    JobMetrics('odd "name" \\ with\nnewline', "completed", 0, 0.25, 1_764_000_100.0, 1_764_000_100.25, 0, 1),
    JobMetrics("never-ok", "running", None, None, 1_764_000_200.0, None, 0, 1),
]


def families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_the_text_parses_with_the_values_and_labels_it_should() -> None:
    parsed = families(render(JOBS))
    odd = 'odd "name" \\ with\nnewline'
    assert parsed["stepflow_last_exit_code"] == {(("job", "backup-db"),): 3.0, (("job", odd),): 0.0}
    assert parsed["stepflow_last_duration_seconds"][(("job", odd),)] == 0.25
    assert parsed["stepflow_last_success_timestamp_seconds"] == {
        (("job", "backup-db"),): 1_763_990_000.5, (("job", odd),): 1_764_000_100.25}
    assert parsed["stepflow_consecutive_failures"][(("job", "backup-db"),)] == 2
    assert parsed["stepflow_runs_total"][(("job", "backup-db"),)] == 40
    status = parsed["stepflow_last_status"]
    assert status[(("job", "backup-db"), ("status", "failed"))] == 1
    assert status[(("job", "backup-db"), ("status", "completed"))] == 0
    assert sum(v for k, v in status.items() if k[0] == ("job", "never-ok")) == 1


def test_help_and_type_once_per_family() -> None:
    text = render(JOBS)
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert helps == types and len(set(helps)) == len(helps) == 7
    assert "# TYPE stepflow_runs_total counter" in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_finds_nothing_to_complain_about() -> None:
    done = subprocess.run(["promtool", "check", "metrics"], input=render(JOBS).encode(), capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout == b"" and done.stderr == b"", done.stdout + done.stderr


@pytest.mark.parametrize(("value", "escaped"), [("a", "a"), ('a"b', 'a\\"b'), ("a\\b", "a\\\\b"), ("a\nb", "a\\nb")])
def test_label_escaping(value: str, escaped: str) -> None:
    assert escape_label(value) == escaped


def test_written_atomically_whole_and_readable_by_node_exporter(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = write_textfile(tmp_path, JOBS)
    finally:
        os.umask(old)
    assert path == tmp_path / FILE_NAME and path.read_text() == render(JOBS)
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]  # no temp file left behind
    write_textfile(tmp_path, JOBS[:1])
    assert path.read_text() == render(JOBS[:1])


def test_a_folder_that_cannot_be_written_raises_oserror_and_leaves_the_old_file(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_textfile(tmp_path / "missing", JOBS)


@pytest.mark.skipif(shutil.which("flock") is None, reason="needs flock(1)")
def test_a_stuck_writer_does_not_stop_the_metrics(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).touch()
    holder = subprocess.Popen(["flock", str(tmp_path / LOCK_NAME), "sleep", "1000"])
    try:
        probe = ["flock", "-n", "-E", "75", str(tmp_path / LOCK_NAME), "true"]
        assert wait_for(lambda: subprocess.run(probe, timeout=60).returncode == 75)  # the holder has it
        assert update_textfile(tmp_path, lambda: JOBS, wait=0.2).read_text() == render(JOBS)
    finally:
        holder.kill()
        holder.wait()


def test_job_metrics_from_recent_runs() -> None:
    runs = [
        {"status": "skipped", "exit_code": 0},
        {"status": "running"},
        {"status": "failed", "exit_code": 2, "duration_s": 3.0, "started_at": "2026-12-03T10:00:00+00:00"},
        {"status": "cancelled", "exit_code": 130, "duration_s": 1.0},
        {"status": "timed_out", "exit_code": 124, "duration_s": 60.0},
        {"status": "completed", "exit_code": 0, "completed_at": "2026-12-01T10:00:05+00:00"},
    ]
    m = job_metrics("j", runs, runs_total=99)
    assert (m.last_status, m.last_exit_code, m.last_duration_s, m.consecutive_failures, m.runs_total) == (
        "failed", 2, 3.0, 2, 99)  # skipped and running runs hide nothing
    assert m.last_run_ts == datetime(2026, 12, 3, 10, tzinfo=UTC).timestamp()
    assert m.last_success_ts == datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC).timestamp()
    older = job_metrics("j", runs[2:3], last_success={"completed_at": "2026-01-01T00:00:00+00:00"})
    assert older.last_success_ts == datetime(2026, 1, 1, tzinfo=UTC).timestamp() and older.runs_total == 1


def test_metrics_from_a_real_store(stepflow: StepflowRunner, storage: Path, tmp_path: Path) -> None:
    for name, code in [("nightly", 0), ("nightly", 1), ("nightly", 1), ("weird*[name]", 0)]:
        stepflow("run", "--name", name, "--", "sh", "-c", f"exit {code}")
    store = open_store(load_settings(storage=storage))
    try:
        assert query.job_names(store) == ["nightly", "weird*[name]"]
        path = update_textfile(tmp_path, lambda: query.metrics(store))
    finally:
        store.close()
    parsed = families(path.read_text())
    assert parsed["stepflow_consecutive_failures"] == {(("job", "nightly"),): 2, (("job", "weird*[name]"),): 0}
    assert parsed["stepflow_runs_total"] == {(("job", "nightly"),): 3, (("job", "weird*[name]"),): 1}
    assert parsed["stepflow_last_exit_code"][(("job", "nightly"),)] == 1
    assert (("job", "nightly"),) in parsed["stepflow_last_success_timestamp_seconds"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30), min_size=1,
                max_size=5, unique=True))
def test_any_job_name_comes_back_from_the_parser(names: list[str]) -> None:
    jobs = [JobMetrics(n, "completed", 0, 1.5, 1.0, 2.0, 0, i + 1) for i, n in enumerate(names)]
    parsed = families(render(jobs))
    assert parsed["stepflow_runs_total"] == {(("job", n),): float(i + 1) for i, n in enumerate(names)}


LEGACY_REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "legacy" / "real" / "head"


@pytest.mark.skipif(not LEGACY_REAL.is_dir(), reason="../shared/legacy/real is not here")
def test_stats_and_metrics_of_a_real_legacy_store(stepflow: StepflowRunner, tmp_path: Path) -> None:
    storage = tmp_path / "legacy"
    shutil.copytree(LEGACY_REAL / "storage", storage)
    for path in storage.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    assert stepflow("--storage", str(storage), "migrate", "--to-wal").returncode == 0
    done = stepflow("--storage", str(storage), "stats", "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["jobs"]) > 10
    store = open_store(load_settings(storage=storage))
    try:
        text = render(query.metrics(store))
    finally:
        store.close()
    assert families(text)["stepflow_runs_total"]
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr

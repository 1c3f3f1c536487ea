"""Artifacts never fill the disk: one copy per file however often named, a per-run cap, a free-space floor."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import StepflowRunner, query


def test_one_file_named_many_times_is_copied_once_and_referenced_each_time(
        stepflow: StepflowRunner, db_path: Path, storage: Path, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 100_000)
    script = "for i in $(seq 1 300); do echo ARTIFACT:big.bin; done"
    result = stepflow("run", "--cwd", str(tmp_path), "--", "bash", "-c", script)
    assert result.returncode == 0, result.stderr
    copies = list((storage / "artifacts").rglob("*big.bin"))
    assert len(copies) == 1
    rows = query(db_path, "SELECT file_path, file_size FROM artifacts")
    assert len(rows) == 300 and set(rows) == {(str(copies[0]), 100_000)}


def test_a_changed_file_is_copied_again(stepflow: StepflowRunner, storage: Path, tmp_path: Path) -> None:
    # copies are made on a thread of their own: wait for the first before changing the file
    script = ("echo one > f.txt; echo ARTIFACT:f.txt;"
              " until ls \"$STEPFLOW_STORAGE_PATH\"/artifacts/*/*f.txt >/dev/null 2>&1; do sleep 0.05; done;"
              " echo two two > f.txt; echo ARTIFACT:f.txt")
    assert stepflow("run", "--cwd", str(tmp_path), "--", "bash", "-c", script).returncode == 0
    assert sorted(p.read_bytes() for p in (storage / "artifacts").rglob("*f.txt")) == [b"one\n", b"two two\n"]


def test_past_the_run_cap_artifacts_are_recorded_by_path(
        stepflow: StepflowRunner, db_path: Path, tmp_path: Path) -> None:
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(b"y" * 800)
    result = stepflow("run", "--cwd", str(tmp_path), "--", "bash", "-c", "echo ARTIFACT:a.bin; echo ARTIFACT:b.bin",
                      env={"STEPFLOW_ARTIFACT_RUN_MAX": "1K"})
    assert result.returncode == 0
    assert "STEPFLOW_ARTIFACT_RUN_MAX" in result.stderr.decode()
    rows = query(db_path, "SELECT source_path, file_path, sha256 IS NOT NULL FROM artifacts ORDER BY rowid")
    assert rows[0][2] == 1 and rows[1] == ("b.bin", str(tmp_path / "b.bin"), 0)


def test_under_the_free_space_floor_artifacts_are_recorded_by_path(
        stepflow: StepflowRunner, db_path: Path, storage: Path, tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"z" * 10)
    result = stepflow("run", "--cwd", str(tmp_path), "--", "bash", "-c", "echo ARTIFACT:a.bin",
                      env={"STEPFLOW_ARTIFACT_MIN_FREE": "1000000G"})
    assert result.returncode == 0
    assert "less than" in result.stderr.decode() and "STEPFLOW_ARTIFACT_MIN_FREE" in result.stderr.decode()
    assert query(db_path, "SELECT file_path FROM artifacts") == [(str(tmp_path / "a.bin"),)]
    assert not list((storage / "artifacts").rglob("*a.bin"))

"""Processes a command leaves running are left alone: stepflow never SIGPIPEs them on its normal exit."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import StepflowRunner, query, wait_for


def test_a_background_child_that_writes_after_the_command_exits_is_not_killed(
        stepflow: StepflowRunner, tmp_path: Path, db_path: Path) -> None:
    done = tmp_path / "done"
    script = f"echo now; (sleep 1; echo late; echo later >&2; touch {done}) &"
    result = stepflow("run", "--", "bash", "-c", script)
    assert result.returncode == 0
    assert wait_for(done.exists, timeout=30)  # it wrote after stepflow stopped reading: no SIGPIPE
    assert query(db_path, "SELECT data FROM logs ORDER BY first_line")[0] == (b"now",)


def test_what_a_leftover_prints_within_the_grace_is_recorded(stepflow: StepflowRunner, db_path: Path) -> None:
    result = stepflow("run", "--", "bash", "-c", "(echo soon; sleep 30) & echo now")
    assert result.returncode == 0
    lines = b"\n".join(bytes(r[0]) for r in query(db_path, "SELECT data FROM logs ORDER BY first_line"))  # type: ignore[call-overload]
    assert sorted(lines.split(b"\n")) == [b"now", b"soon"]

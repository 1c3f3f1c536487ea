"""Messages say what happened in words, naming the file; never a Python exception repr."""

from __future__ import annotations

from pathlib import Path

from stepflow.errors import describe_os_error
from tests.conftest import StepflowRunner


def test_os_errors_read_as_words_naming_the_file() -> None:
    assert describe_os_error(PermissionError(13, "Permission denied", "/x/y")) == "permission denied: /x/y"
    assert describe_os_error(OSError(28, "No space left on device")) == "no space left on device"


def test_a_store_under_a_plain_file_is_told_in_words_and_the_run_is_spooled(
        stepflow: StepflowRunner, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a folder")
    result = stepflow("run", "--", "bash", "-c", "echo hi; exit 3",
                      env={"STEPFLOW_STORAGE_PATH": str(tmp_path / "plain" / "store")})
    assert result.returncode == 3 and result.stdout == b"hi\n"
    err = result.stderr.decode()
    assert f"not a directory: {tmp_path / 'plain'}" in err and "is kept in" in err
    assert "Error" not in err and "[Errno" not in err

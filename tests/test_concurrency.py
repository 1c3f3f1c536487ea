"""Parallel cron jobs: many `stepflow run` processes write one store at once, and nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import query

RUNS = int(os.environ.get("STEPFLOW_TEST_PARALLEL", "50"))  # the issue asks CI for at least 50
JOB = (
    "import sys\n"
    "for s in range(5):\n"
    "  print(f'STEP_START:step{s}', flush=True)\n"
    "  for i in range(400): print(f'{s}:{i} ' + 'x' * 60)\n"
    "  sys.stdout.flush()\n"
    "sys.exit(int(sys.argv[1]))\n"
)


def test_many_writers_lose_nothing(db_path: Path, tmp_path: Path) -> None:
    job = tmp_path / "job.py"
    job.write_text(JOB)
    procs = [
        subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--output", "quiet", "-n", f"job{n}", "--",
                          sys.executable, str(job), str(n % 4)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        for n in range(RUNS)
    ]
    results = [(p.wait(timeout=240), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    assert [code for code, _ in results] == [n % 4 for n in range(RUNS)]  # no exit status changed
    troubled = [err for _, err in results if b"locked" in err or b"not fully recorded" in err]
    assert not troubled, b"\n---\n".join(troubled[:3]).decode(errors="replace")
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]
    rows = query(db_path, "SELECT name, exit_code, total_steps, completed_steps, line_count FROM executions")
    assert sorted(rows) == sorted(
        (f"job{n}", n % 4, 5, 5 if n % 4 == 0 else 4, 2000) for n in range(RUNS)
    )
    assert query(db_path, "SELECT SUM(line_count) FROM logs") == [(RUNS * 2000,)]
    assert query(db_path, "SELECT COUNT(*) FROM steps") == [(RUNS * 5,)]

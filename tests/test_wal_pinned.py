"""A reader that pins the WAL is named: by `health` when the WAL is over its limit, by `checkpoint`,
which exits non-zero when it could not copy every frame."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import StepflowRunner


def test_health_and_checkpoint_name_the_reader_that_pins_the_wal(stepflow: StepflowRunner, db_path: Path) -> None:
    assert stepflow("run", "--", "true").returncode == 0
    code = (
        "import apsw, sys\n"
        f"c = apsw.Connection({str(db_path)!r}); c.execute('BEGIN')\n"
        "c.execute('SELECT COUNT(*) FROM executions').fetchall()\n"
        "print('reading', flush=True); sys.stdin.read()\n"
    )
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    try:
        assert reader.stdout is not None and reader.stdout.readline() == b"reading\n"
        noisy = "for i in range(30000): print('line', i, 'x' * 60)"
        assert stepflow("run", "--output", "quiet", "--", sys.executable, "-c", noisy).returncode == 0
        health = stepflow("health", "--max-wal", "64K", "--min-free", "0", "--json")
        assert health.returncode == 1
        data = json.loads(health.stdout)
        assert any(f"pid {reader.pid} (" in r and "pins it" in r for r in data["reasons"]), data["reasons"]
        checkpoint = stepflow("checkpoint")
        assert checkpoint.returncode == 1
        assert f"pid {reader.pid} (" in checkpoint.stdout.decode() and "reads the WAL" in checkpoint.stdout.decode()
    finally:
        reader.kill()
        reader.wait()
    after = stepflow("checkpoint")
    assert after.returncode == 0, after.stdout

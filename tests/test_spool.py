"""The spool: what the store does not take in time (locked, stopped writer, disk full) is kept
on disk and stored later exactly once; the runs end with the status their commands ended with."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stepflow.store.base import LogBlock, NewArtifact, NewRun, NewStep, RunChange, StepChange
from stepflow.store.spool import batch_line, decode_write, encode_write
from tests.conftest import StepflowRunner, query, tmpfs, wait_for

SCRIPT = "echo STEP_START:one; for i in $(seq 1 {n}); do echo line $i; done; echo STEP_START:two; echo last; exit {rc}"


def start_runs(codes: list[int], *, n: int = 100, env: dict[str, str] | None = None) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--output", "quiet", "--", "bash", "-c",
                              SCRIPT.format(n=n, rc=rc)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
            for rc in codes]


def finish(procs: list[subprocess.Popen[bytes]]) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        _o, err = p.communicate(timeout=120)
        out.append((p.returncode, err.decode()))
    return out


def hold_write_lock(db: Path) -> subprocess.Popen[bytes]:
    """Another process (APSW, as the sqlite3 shell would) inside BEGIN IMMEDIATE until killed."""
    code = (
        "import apsw, sys, time\n"
        f"c = apsw.Connection({str(db)!r}); c.execute('BEGIN IMMEDIATE')\n"
        "c.execute(\"INSERT INTO spooled VALUES ('held', 0, 0)\")\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"locked\n"
    return proc


def stored(db: Path) -> list[tuple[object, ...]]:
    """Per run, oldest first: status, exit code, lines counted, lines stored, steps stored."""
    return query(db, "SELECT e.status, e.exit_code, e.line_count,"
                     " (SELECT COALESCE(SUM(line_count), 0) FROM logs l WHERE l.execution_id = e.id),"
                     " (SELECT COUNT(*) FROM steps s WHERE s.execution_id = e.id)"
                     " FROM executions e ORDER BY e.created_ts")


def test_every_write_kind_survives_the_spool_format() -> None:
    writes = [
        NewRun.of({"id": "r", "name": "n", "command": "c", "status": "running", "created_at": "t",
                   "metadata": {"k": ["v", 1]}, "created_ts": 1.5}),
        NewStep.of({"id": "s", "execution_id": "r", "name": "a", "step_index": 0, "status": "running",
                    "created_at": "t"}),
        NewArtifact.of({"id": "a", "execution_id": "r", "name": "f", "file_path": "/x", "created_at": "t"}),
        RunChange("r", status="failed", exit_code=3, warnings=["w"]),
        StepChange("s", status="completed", metadata={"x": None}),
        LogBlock("r", 0, 1, 0, 2, 2.25, b"\xff\x00bytes\nline\xe2\x80", 7),
    ]
    line = batch_line("r", 4, writes)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    decoded = [decode_write(json.loads(json.dumps(encode_write(w)))) for w in writes]
    assert decoded == writes


def test_a_lock_held_across_runs_loses_nothing_once_it_is_released(
        stepflow: StepflowRunner, db_path: Path, storage: Path) -> None:
    assert stepflow("run", "--", "true").returncode == 0
    holder = hold_write_lock(db_path)
    try:
        results = finish(start_runs([0, 1, 2, 3, 4]))
        assert holder.poll() is None  # every run ended while the lock was still held
        assert [rc for rc, _ in results] == [0, 1, 2, 3, 4]
        for _rc, err in results:
            assert f"locked by pid {holder.pid}" in err and "is kept in" in err
        assert len(list((storage / "spool").glob("*.spool"))) == 5
    finally:
        holder.kill()
        holder.wait()
    listed = stepflow("ls", "--json")  # the next command replays
    assert listed.returncode == 0, listed.stderr
    assert sorted(r["status"] for r in json.loads(listed.stdout)) == ["completed", "completed", *["failed"] * 4]
    assert not list((storage / "spool").glob("*.spool"))
    runs = stored(db_path)[1:]
    assert sorted(runs) == sorted([("completed", 0, 101, 101, 2)] + [("failed", rc, 101, 101, 2) for rc in (1, 2, 3, 4)])
    again = stepflow("db", "replay")
    assert again.returncode == 0 and again.stdout.startswith(b"replayed 0 batches")
    assert stored(db_path)[1:] == runs


def _stopped(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "T"


def test_a_stopped_writer_is_named_and_its_victims_are_stored_later_exactly_once(
        stepflow: StepflowRunner, db_path: Path, storage: Path, tmp_path: Path) -> None:
    assert stepflow("run", "--", "true").returncode == 0
    code = (
        "import apsw, os, signal\n"
        f"c = apsw.Connection({str(db_path)!r}); c.execute('BEGIN IMMEDIATE')\n"
        "c.execute(\"INSERT INTO spooled VALUES ('held', 0, 0)\")\n"
        "os.kill(os.getpid(), signal.SIGSTOP)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code])
    try:
        assert wait_for(lambda: _stopped(writer.pid))
        results = finish(start_runs([0, 5], n=500))
        assert [rc for rc, _ in results] == [0, 5]
        for _rc, err in results:
            assert f"locked by pid {writer.pid}" in err and "which is stopped" in err
        spooled = list((storage / "spool").glob("*.spool"))
        assert len(spooled) == 2
        aside = tmp_path / "aside"
        aside.mkdir()
        for f in spooled:
            shutil.copy(f, aside / f.name)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    replayed = stepflow("db", "replay", "--json")
    assert replayed.returncode == 0, replayed.stderr
    first = json.loads(replayed.stdout)
    assert first["runs"] == 2 and first["batches"] > 0 and first["skipped"] == 0 and first["waiting"] == []
    runs = stored(db_path)[1:]
    assert sorted(runs) == [("completed", 0, 501, 501, 2), ("failed", 5, 501, 501, 2)]
    for f in aside.iterdir():  # the same spool once more: nothing is applied twice
        shutil.copy(f, storage / "spool" / f.name)
    second = json.loads(stepflow("db", "replay", "--json").stdout)
    assert second["batches"] == 0 and second["skipped"] == first["batches"] and second["runs"] == 2
    assert stored(db_path)[1:] == runs


@pytest.mark.parametrize("lines", [50000])
def test_a_full_disk_spools_elsewhere_and_the_run_is_never_called_abandoned(
        stepflow: StepflowRunner, tmp_path: Path, lines: int) -> None:
    with tmpfs(tmp_path / "mnt", "size=20m") as mnt:
        store = mnt / "store"
        env = {"STEPFLOW_STORAGE_PATH": str(store)}
        db = store / "database" / "stepflow.db"
        assert stepflow("run", "--", "true", env=env).returncode == 0
        filler = mnt / "filler"
        with open(filler, "wb") as f:  # fill the disk to its last block
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        result = finish(start_runs([3], n=lines, env=env))[0]
        assert result[0] == 3
        assert "disk is full" in result[1] and "is kept in" in result[1], result[1]
        fallback = tmp_path / "runtime" / "stepflow-spool"
        assert len(list(fallback.glob("*/*.spool"))) == 1
        while_full = stepflow("ls", "--json", env=env)  # cannot replay yet: the run is not abandoned
        assert while_full.returncode == 0, while_full.stderr
        assert "abandoned" not in [r["status"] for r in json.loads(while_full.stdout)]
        filler.unlink()
        listed = stepflow("ls", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert [r["status"] for r in json.loads(listed.stdout)] == ["failed", "completed"]
        assert stored(db)[1:] == [("failed", 3, lines + 1, lines + 1, 2)]
        assert not list(fallback.glob("*/*.spool"))


@pytest.mark.parametrize("command", [["ls"], ["show", "last"], ["logs", "last"], ["health", "--min-free", "0"],
                                     ["db", "stats"], ["db", "check"], ["stats"]])
def test_reading_commands_work_on_a_read_only_mount(stepflow: StepflowRunner, tmp_path: Path,
                                                    command: list[str]) -> None:
    with tmpfs(tmp_path / "mnt", "size=4m") as mnt:
        env = {"STEPFLOW_STORAGE_PATH": str(mnt / "store")}
        assert stepflow("run", "--", "bash", "-c", "echo STEP_START:a; echo hello", env=env).returncode == 0
        assert subprocess.run(["mount", "-o", "remount,ro", str(mnt)]).returncode == 0
        result = stepflow(*command, env=env)
        assert result.returncode == 0, result.stderr
        assert b"read-only" not in result.stderr and b"Error" not in result.stderr
        if command[0] == "logs":
            assert result.stdout == b"hello\n"
        if command[0] == "health":
            assert result.stdout.startswith(b"healthy")

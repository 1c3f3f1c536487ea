"""`--output json` is public: the name and the keys of every event kind it prints are pinned here."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import StepflowRunner

from stepflow.views.jsonl import JsonView

SCRIPT = """
echo STEP_START:build
echo hello
echo META:ESTIMATED_DURATION:5
echo ARTIFACT:{present}:the report
echo STEP_COMPLETE:other
echo STEP_COMPLETE:build
echo META:owner:ops
echo STEP_ERROR:nothing running
echo STEP_START:deploy
echo STEP_ERROR:it broke
echo STEP_START:last
exit 3
"""

STEP = {"step", "index", "status"}  # present when the event concerns a step
BASE = {"event", "time"}
# Every kind `stepflow run --output json` prints today, in the order SCRIPT makes them, with
# exactly these keys.
PINNED = [
    ("run_started", BASE | {"id", "name", "command"}),
    ("step_started", BASE | STEP),
    ("line", BASE | {"stream", "text"}),
    ("meta", BASE | STEP | {"message"}),
    ("artifact", BASE | STEP | {"path"}),
    ("warning", BASE | STEP | {"message"}),
    ("step_completed", BASE | STEP | {"duration_s"}),
    ("meta", BASE | {"message"}),
    ("run_error", BASE | {"message"}),
    ("step_started", BASE | STEP),
    ("step_failed", BASE | STEP | {"duration_s", "message"}),
    ("step_started", BASE | STEP),
    ("step_failed", BASE | STEP | {"duration_s", "message"}),
    ("run_finished", BASE | {"id", "status", "exit_code", "duration_s", "total_steps", "completed_steps",
                             "warnings"}),
]


def test_json_event_names_and_fields_are_pinned(stepflow: StepflowRunner, tmp_path: Path) -> None:
    (tmp_path / "report.txt").write_text("ok\n")
    script = SCRIPT.format(present=tmp_path / "report.txt")
    result = stepflow("run", "--output", "json", "--", "bash", "-c", script)
    assert result.returncode == 3
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["event"], set(e)) for e in events] == PINNED
    by_kind = {e["event"]: e for e in reversed(events)}  # the first of each kind
    assert by_kind["step_started"]["status"] == "running"
    assert [e["message"] for e in events if e["event"] == "meta"] == ["ESTIMATED_DURATION=5", "owner=ops"]
    assert by_kind["warning"]["message"] == "STEP_COMPLETE:other ignored: the running step is 'build'"
    assert by_kind["line"] == {**by_kind["line"], "stream": "stdout", "text": "hello"}
    assert by_kind["artifact"]["path"] == str(tmp_path / "report.txt")
    assert by_kind["run_error"]["message"] == "nothing running"
    assert [e.get("message") for e in events if e["event"] == "step_failed"] == [
        "it broke", "command exited with status 3"]
    finished = events[-1]
    assert (finished["status"], finished["exit_code"], finished["total_steps"], finished["completed_steps"]) == (
        "failed", 3, 3, 1)
    assert finished["warnings"] == ["STEP_COMPLETE:other ignored: the running step is 'build'"]


def test_the_problem_event_is_pinned() -> None:
    read, write = os.pipe()
    try:
        view = JsonView(fd=write, clock=lambda: 0.0)
        view.problem("store is locked")
        os.close(write)
        write = -1
        record = json.loads(os.read(read, 4096))
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    assert record == {"event": "problem", "time": "1970-01-01T00:00:00+00:00", "message": "store is locked"}

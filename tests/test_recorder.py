"""The recorder over the whole marker vocabulary: a table of markers -> steps, warnings, events.

Pure: a real Recorder and RunState, a sink that keeps the events, no store; only artifacts
touch tmp_path.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from stepflow import events as ev
from stepflow.dialects.base import (
    Marker,
    Notice,
    StepComplete,
    StepEnd,
    StepError,
    StepStart,
    TestResult,
)
from stepflow.run.recorder import Recorder
from stepflow.run.supervisor import Outcome
from stepflow.state import RunState


class ListSink:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def handle(self, event: ev.Event) -> None:
        self.events.append(event)


def record(tmp_path: Path, markers: list[Marker], *, finish: int | None = None) -> tuple[RunState, ListSink]:
    state = RunState(id="r", name="n", command="c", started=0.0)
    sink = ListSink()
    ticks = itertools.count(1)
    recorder = Recorder(state, [sink], artifacts_dir=tmp_path, artifact_max_size=1024, cwd=str(tmp_path),
                        clock=lambda: float(next(ticks)))
    recorder.start({})
    for marker in markers:
        recorder.marker(1, marker)
    if finish is not None:
        recorder.finish(Outcome(returncode=finish, exit_status=finish))
    return state, sink


def steps(state: RunState) -> list[tuple[str, str, int]]:
    """(name, status, depth) of every step, in the order they started."""
    return [(s.name, s.status, s.depth) for s in state.steps]


def nested(name: str) -> StepStart:
    return StepStart(name, nested=True)


TABLE: list[tuple[str, list[Marker], list[tuple[str, str, int]], list[str]]] = [
    ("flat starts end the step before", [StepStart("a"), StepStart("b")],
     [("a", "completed", 0), ("b", "running", 0)], ["b"]),
    ("a nested start opens inside the innermost", [StepStart("a"), nested("b"), nested("c")],
     [("a", "running", 0), ("b", "running", 1), ("c", "running", 2)], ["a", "b", "c"]),
    ("an end without a name ends the innermost", [StepStart("a"), nested("b"), StepEnd()],
     [("a", "running", 0), ("b", "completed", 1)], ["a"]),
    ("an end by name ends that step and all inside it", [StepStart("a"), nested("b"), nested("c"), StepEnd("b")],
     [("a", "running", 0), ("b", "completed", 1), ("c", "completed", 2)], ["a"]),
    ("a flat start completes every open step", [StepStart("a"), nested("b"), StepStart("c")],
     [("a", "completed", 0), ("b", "completed", 1), ("c", "running", 0)], ["c"]),
    ("a nested start with nothing open is a top-level step", [nested("a"), StepEnd()],
     [("a", "completed", 0)], []),
    ("an end with nothing open is ignored", [StepEnd(), StepStart("a")], [("a", "running", 0)], ["a"]),
    ("STEP_ERROR ends the innermost step failed", [StepStart("a"), nested("b"), StepError("boom")],
     [("a", "running", 0), ("b", "failed", 1)], ["a"]),
    ("a step marked failed stays open, then ends failed", [StepStart("a"), StepError("bad", ends=False)],
     [("a", "running", 0)], ["a"]),
    ("... by an end without a name", [StepStart("a"), StepError("bad", ends=False), StepEnd()],
     [("a", "failed", 0)], []),
    ("... by a flat start", [StepStart("a"), StepError("bad", ends=False), StepStart("b")],
     [("a", "failed", 0), ("b", "running", 0)], ["b"]),
    ("... by the end of its parent", [StepStart("a"), nested("b"), StepError("bad", ends=False), StepEnd("a")],
     [("a", "completed", 0), ("b", "failed", 1)], []),
    ("... by STEP_COMPLETE", [StepStart("a"), StepError("bad", ends=False), StepComplete("a")],
     [("a", "failed", 0)], []),
    ("STEP_COMPLETE ends the innermost step of that name", [StepStart("a"), nested("b"), StepComplete("b")],
     [("a", "running", 0), ("b", "completed", 1)], ["a"]),
]


@pytest.mark.parametrize("markers, expected, still_open", [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_steps_nest_and_end(tmp_path: Path, markers: list[Marker], expected: list[tuple[str, str, int]],
                            still_open: list[str]) -> None:
    state, _ = record(tmp_path, markers)
    assert steps(state) == expected
    assert [s.name for s in state.open_steps] == still_open
    assert state.current is (state.open_steps[-1] if state.open_steps else None)
    assert state.completed_steps == sum(status == "completed" for _, status, _ in expected)
    assert state.warnings == []


def test_a_failed_mark_keeps_its_message(tmp_path: Path) -> None:
    state, sink = record(tmp_path, [StepStart("a"), StepError("lint", ends=False, metadata={"file": "x.py"}),
                                    StepError("later", ends=False), StepEnd()])
    (step,) = state.steps
    assert (step.status, step.error) == ("failed", "lint")  # the first failure is the one told
    assert step.metadata["errors"] == [{"message": "lint", "file": "x.py"}]
    ended = [e for e in sink.events if isinstance(e, ev.StepEnded)]
    assert [(e.step.name, e.status, e.error) for e in ended] == [("a", "failed", "lint")]


def test_an_end_by_name_ends_the_inner_steps_first(tmp_path: Path) -> None:
    _, sink = record(tmp_path, [StepStart("a"), nested("b"), nested("c"), StepEnd("a")])
    assert [e.step.name for e in sink.events if isinstance(e, ev.StepEnded)] == ["c", "b", "a"]


def test_an_end_of_a_step_not_open_is_a_warning(tmp_path: Path) -> None:
    state, _ = record(tmp_path, [StepStart("a"), StepEnd("zz")])
    assert steps(state) == [("a", "running", 0)]
    assert state.warnings == ["end of step 'zz' ignored: no open step has that name"]


def test_a_mismatched_complete_is_a_warning_and_ends_nothing(tmp_path: Path) -> None:
    state, _ = record(tmp_path, [StepStart("a"), nested("b"), StepComplete("a")])
    assert steps(state) == [("a", "running", 0), ("b", "running", 1)]
    assert state.warnings == ["STEP_COMPLETE:a ignored: the running step is 'b'"]


def test_the_end_of_the_command_ends_every_open_step(tmp_path: Path) -> None:
    state, _ = record(tmp_path, [StepStart("a"), nested("b")], finish=3)
    assert steps(state) == [("a", "failed", 0), ("b", "failed", 1)]
    assert [s.error for s in state.steps] == ["command exited with status 3"] * 2
    assert (state.status, state.open_steps, state.current) == ("failed", [], None)
    state, _ = record(tmp_path, [StepStart("a"), nested("b")], finish=0)
    assert steps(state) == [("a", "completed", 0), ("b", "completed", 1)] and state.status == "completed"


def test_times_given_by_markers_are_kept(tmp_path: Path) -> None:
    state, _ = record(tmp_path, [StepStart("a", at=100.0), StepEnd(at=104.5)])
    assert (state.steps[0].started, state.steps[0].ended, state.steps[0].duration) == (100.0, 104.5, 4.5)


@pytest.mark.parametrize("level, kept", [("warning", ["disk low"]), ("notice", ["notice: disk low"]),
                                         ("debug", []), ("progress", [])])
def test_notices_are_run_warnings_at_warning_and_notice_level(tmp_path: Path, level: str, kept: list[str]) -> None:
    state, sink = record(tmp_path, [StepStart("a"), Notice(level, "disk low", {"file": "f"})])
    assert state.warnings == kept
    (notice,) = [e for e in sink.events if isinstance(e, ev.NoticeRaised)]
    assert (notice.level, notice.message, notice.step, dict(notice.metadata)) == (
        level, "disk low", state.steps[0], {"file": "f"})
    assert steps(state) == [("a", "running", 0)]  # a notice never changes a step's status


def test_test_results_go_to_the_step_metadata(tmp_path: Path) -> None:
    state, sink = record(tmp_path, [
        StepStart("unit"), TestResult("t1", "passed", 0.5), TestResult("t2", "failed", None, "boom", "trace"),
        StepEnd(), TestResult("loose", "ignored"),
    ])
    assert state.steps[0].metadata["tests"] == [
        {"name": "t1", "status": "passed", "duration_s": 0.5},
        {"name": "t2", "status": "failed", "message": "boom", "details": "trace"},
    ]
    assert state.metadata["tests"] == [{"name": "loose", "status": "ignored"}]
    assert steps(state) == [("unit", "completed", 0)]  # a failed test is the step's business, not a marker's
    assert sum(isinstance(e, ev.TestRecorded) for e in sink.events) == 3


def test_lines_go_to_the_innermost_step(tmp_path: Path) -> None:
    state = RunState(id="r", name="n", command="c", started=0.0)
    sink = ListSink()
    recorder = Recorder(state, [sink], artifacts_dir=tmp_path, artifact_max_size=1024, cwd=str(tmp_path))
    recorder.marker(1, StepStart("a"))
    recorder.lines(1, b"x\ny", 2, 0)
    recorder.marker(1, nested("b"))
    recorder.lines(2, b"z", 1, 0)
    recorder.marker(1, StepEnd())
    recorder.lines(1, b"w", 1, 0)
    assert [(s.name, s.lines) for s in state.steps] == [("a", 3), ("b", 1)]
    blocks = [(e.step.name if e.step else None, e.first, e.count) for e in sink.events if isinstance(e, ev.LinesRead)]
    assert blocks == [("a", 0, 2), ("b", 2, 1), ("a", 3, 1)]


def test_every_sink_gets_every_event_in_order(tmp_path: Path) -> None:
    state = RunState(id="r", name="n", command="c", started=0.0)
    first, second = ListSink(), ListSink()
    recorder = Recorder(state, [first, second], artifacts_dir=tmp_path, artifact_max_size=1024, cwd=str(tmp_path))
    recorder.start({"tags": []})
    recorder.marker(1, StepStart("a"))
    recorder.finish(Outcome(returncode=0, exit_status=0))
    kinds = [type(e).__name__ for e in first.events]
    assert kinds == ["RunStarted", "StepStarted", "StepEnded", "RunFinished"]
    assert first.events == second.events


def test_events_are_frozen() -> None:
    import typing

    from stepflow.record import FrozenInstanceError, fields

    for kind in typing.get_args(ev.Event):
        assert kind.__record_frozen__, kind
        assert fields(kind)[0].name == "run", kind
    with pytest.raises(FrozenInstanceError):
        ev.WarningRaised(None, None, "x").message = "y"  # type: ignore[arg-type, misc]

"""Native dialect out: what each emitter prints, read back by the matching input dialect,
gives the same steps; `--ci` resolution; the GitHub step summary."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepflow.ci import CI_CHOICES, RunFinished, StepBegan, StepFinished, display_name, load_emitter, resolve_ci
from stepflow.ci.github import GithubEmitter, escape_data, step_summary
from stepflow.ci.gitlab import GitlabEmitter, section_name
from stepflow.ci.teamcity import TeamcityEmitter, escape
from stepflow.dialects import load
from stepflow.dialects.base import Marker, Meta, StepEnd, StepError, StepStart
from stepflow.dialects.text import clean_name

NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


def steps_from(markers: list[Marker]) -> list[tuple[str, str, int]]:
    """(name, status, depth) per step in start order, as the recorder reads the markers:
    a flat start ends the open steps, a nested one opens inside; StepEnd(name) ends that step
    and the ones inside it; StepError(ends=False) marks the innermost failed."""
    steps: list[list[object]] = []
    open_: list[list[object]] = []
    for marker in markers:
        if isinstance(marker, StepStart):
            if not marker.nested:
                open_.clear()
            step: list[object] = [marker.name, "completed", len(open_)]
            steps.append(step)
            open_.append(step)
        elif isinstance(marker, StepEnd) and open_:
            if marker.name is None:
                open_.pop()
            else:
                for position in range(len(open_) - 1, -1, -1):
                    if open_[position][0] == marker.name:
                        del open_[position:]
                        break
        elif isinstance(marker, StepError) and open_:
            open_[-1][1] = "failed"
            if marker.ends:
                open_.pop()
    return [(str(n), str(s), int(d)) for n, s, d in steps]  # type: ignore[call-overload]


def play(emitter_name: str, script: list[tuple[str, str, int, str | None]]) -> tuple[list[str], list[Marker]]:
    """Run a script of ("start"|"end", name, index, status-or-error) through an emitter and
    read its lines back with the dialect of the same name."""
    emitter = load_emitter(emitter_name)()
    lines: list[str] = []
    at = 1_700_000_000.25
    for event, name, index, extra in script:
        at += 1.5
        if event == "start":
            lines += emitter.step_started(StepBegan(name, index, at))
        else:
            status, _, error = (extra or "completed").partition(":")
            lines += emitter.step_ended(StepFinished(name, index, status, at, 1.5, error or None))
    lines += emitter.run_finished(RunFinished("failed", 1, at, 9.0))
    dialect = load(emitter_name)()
    return lines, [m for line in lines for m in dialect.parse(line)]


FLAT = [
    ("start", "Build", 1, None), ("end", "Build", 1, "completed"),
    ("start", "Test: unit, 100% [x] 'q' |n", 2, None), ("end", "Test: unit, 100% [x] 'q' |n", 2, "failed:2 failed\nsee log"),
    ("start", "Deploy", 3, None), ("end", "Deploy", 3, "completed"),
]
NESTED = [
    ("start", "Release", 1, None), ("start", "Tag", 2, None), ("end", "Tag", 2, "completed"),
    ("start", "Upload", 3, None), ("end", "Upload", 3, "failed:network down"), ("end", "Release", 1, "failed:Upload failed"),
    ("start", "Notify", 4, None), ("end", "Notify", 4, "completed"),
]


def test_github_round_trip() -> None:
    lines, markers = play("github", FLAT)
    assert steps_from(markers) == [("Build", "completed", 0), ("Test: unit, 100% [x] 'q' |n", "failed", 0), ("Deploy", "completed", 0)]
    assert lines[:3] == ["::group::Build", "Build: completed in 1.5s", "::endgroup::"]
    assert "::error title=step Test%3A unit%2C 100%25 [x] 'q' |n failed::2 failed%0Asee log" in lines
    errors = [m for m in markers if isinstance(m, StepError)]
    assert errors == [StepError("2 failed\nsee log", ends=False, metadata={"title": "step Test: unit, 100% [x] 'q' |n failed"})]


def test_github_flattens_nested_steps() -> None:
    lines, markers = play("github", NESTED)
    assert lines.count("::group::Release") == 1
    assert lines.count("::endgroup::") == sum(line.startswith("::group::") for line in lines)
    assert [(n, d) for n, _, d in steps_from(markers)] == [("Release", 0), ("Tag", 0), ("Upload", 0), ("Notify", 0)]


def test_gitlab_round_trip_keeps_nesting_and_times() -> None:
    lines, markers = play("gitlab", NESTED)
    assert steps_from(markers) == [("Release", "completed", 0), ("Tag", "completed", 1), ("Upload", "completed", 1),
                                   ("Notify", "completed", 0)]  # GitLab has no failure marker: the exit status says
    assert [m.at for m in markers if isinstance(m, StepStart)] == [1_700_000_001.0, 1_700_000_003.0, 1_700_000_006.0, 1_700_000_010.0]
    assert lines[0] == "\x1b[0Ksection_start:1700000001:step_1_Release\r\x1b[0KRelease"
    assert "\x1b[31;1mstep Upload failed: network down\x1b[0m" in lines


def test_gitlab_collapsed_sections() -> None:
    emitter = GitlabEmitter(collapsed=True)
    assert emitter.step_started(StepBegan("a b", 7, 5.9)) == ["\x1b[0Ksection_start:5:step_7_a_b[collapsed=true]\r\x1b[0Ka b"]


def test_buildkite_round_trip() -> None:
    lines, markers = play("buildkite", FLAT)
    assert [m.name for m in markers if isinstance(m, StepStart)] == ["Build", "Test: unit, 100% [x] 'q' |n", "Deploy"]
    assert lines[2:5] == ["^^^ +++", "\x1b[31mstep Test: unit, 100% [x] 'q' |n failed: 2 failed see log\x1b[0m", "--- Deploy"]
    assert markers[2] == Meta("expanded", "true")


def test_teamcity_round_trip() -> None:
    lines, markers = play("teamcity", NESTED)
    assert steps_from(markers) == [("Release", "failed", 0), ("Tag", "completed", 1), ("Upload", "failed", 1),
                                   ("Notify", "completed", 0)]
    assert "##teamcity[buildProblem description='step Upload failed: network down' identity='stepflow-step-3']" in lines
    _, flat = play("teamcity", FLAT)
    assert steps_from(flat)[1] == ("Test: unit, 100% [x] 'q' |n", "failed", 0)


@pytest.mark.parametrize("name", ["github", "teamcity", "gitlab", "buildkite"])
@given(step=NAMES | st.sampled_from(["\ufffd", " \ufffd ", "\x1b[0m", "\n", "a\x00b"]))
def test_any_step_name_reads_back(name: str, step: str) -> None:
    _, markers = play(name, [("start", step, 1, None), ("end", step, 1, "failed:x")])
    starts = [m.name for m in markers if isinstance(m, StepStart)]
    shown = clean_name(display_name(step, 1))
    if name == "buildkite" and not shown.strip("\ufffd "):
        shown = "step 1"
    assert starts == [shown]


@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_escapes_round_trip(text: str) -> None:
    from stepflow.dialects.github import unescape_data, unescape_property
    from stepflow.dialects.teamcity import unescape

    assert unescape(escape(text)) == text
    assert "\n" not in escape(text) and "\r" not in escape(text)
    assert unescape_data(escape_data(text)) == text
    from stepflow.ci.github import escape_property
    assert unescape_property(escape_property(text)) == text


def test_section_names_are_what_gitlab_accepts() -> None:
    assert section_name("Deploy to prod (eu-west-1)!", 3) == "step_3_Deploy_to_prod__eu-west-1"
    assert section_name("ü", 2) == "step_2"
    assert len(section_name("x" * 500, 12)) <= 64


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [("none", {"GITHUB_ACTIONS": "true"}, None), ("auto", {}, None), ("auto", {"GITLAB_CI": "true"}, "gitlab"),
     ("auto", {"TEAMCITY_VERSION": "1"}, "teamcity"), ("GitHub", {}, "github"), ("buildkite", {"GITLAB_CI": "1"}, "buildkite")],
)
def test_resolve_ci(option: str, env: dict[str, str], expected: str | None) -> None:
    assert resolve_ci(option, env) == expected


def test_resolve_ci_refuses_an_unknown_ci() -> None:
    with pytest.raises(ValueError) as raised:
        resolve_ci("jenkins", {})
    assert str(raised.value) == f"unknown --ci value 'jenkins'; choose from {', '.join(CI_CHOICES)}"


def test_github_step_summary_is_a_markdown_table() -> None:
    steps = [StepFinished("build", 1, "completed", 0, 1.25), StepFinished("te|st\nx", 2, "failed", 0, 61, "boom | bang"),
             StepFinished("deploy", 3, "skipped", 0, None)]
    text = step_summary(steps, RunFinished("failed", 1, 0, 62.5), title="deploy.sh")
    assert text.splitlines() == [
        "### deploy.sh",
        "",
        "| # | Step | Status | Duration | Error |",
        "|--:|------|--------|---------:|-------|",
        "| 1 | build | ✅ completed | 1.2s |   |",
        "| 2 | te\\|st x | ❌ failed | 1m01s | boom \\| bang |",
        "| 3 | deploy | ⏭️ skipped | - |   |",
        "",
        "Run **failed** in 1m02s, exit status 1.",
    ]


def test_teamcity_escape_keeps_one_line() -> None:
    assert escape("a|b'c\nd\re[f]g\x01\u2028") == "a||b|'c|nd|re|[f|]g|0x0001|l"


def test_github_emitter_closes_a_group_left_open_at_the_end() -> None:
    emitter = GithubEmitter()
    emitter.step_started(StepBegan("a", 1, 0))
    assert emitter.run_finished(RunFinished("failed", 1, 0)) == ["::endgroup::"]
    assert TeamcityEmitter().run_finished(RunFinished("completed", 0, 0)) == []

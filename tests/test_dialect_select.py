"""`--markers` resolution, the registry, and the shared pre-filter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepflow.dialects import MARKER_CHOICES, REGISTRY, MarkerSelection, load, names_for, select_markers
from stepflow.dialects import stepflow as markers
from stepflow.dialects.base import Prefilter

STEPFLOW_NEEDLES = (b"step_", b"artifact:", b"meta:", b"::add-mask::")  # stepflow.markers' own


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        ("auto", {}, MarkerSelection(("stepflow",))),
        ("auto", {"GITHUB_ACTIONS": "true"}, MarkerSelection(("stepflow", "github"))),
        ("auto", {"GITLAB_CI": "true"}, MarkerSelection(("stepflow", "gitlab"))),
        ("auto", {"BUILDKITE": "true"}, MarkerSelection(("stepflow", "buildkite"))),
        ("auto", {"TEAMCITY_VERSION": "2024.12"}, MarkerSelection(("stepflow", "teamcity"))),
        ("auto", {"GITHUB_ACTIONS": ""}, MarkerSelection(("stepflow",))),
        ("start", {"GITHUB_ACTIONS": "true"}, MarkerSelection(("stepflow",))),
        ("anywhere", {}, MarkerSelection(("stepflow",), anywhere=True)),
        ("anywhere,auto", {"BUILDKITE": "true"}, MarkerSelection(("stepflow", "buildkite"), anywhere=True)),
        ("github", {}, MarkerSelection(("github",))),
        ("stepflow,github", {}, MarkerSelection(("stepflow", "github"))),
        ("github,stepflow", {}, MarkerSelection(("github", "stepflow"))),
        (" GitHub , TEAMCITY ", {}, MarkerSelection(("github", "teamcity"))),
        ("auto,github", {"GITHUB_ACTIONS": "true"}, MarkerSelection(("stepflow", "github"))),
        ("gitlab,buildkite,teamcity,github", {}, MarkerSelection(("gitlab", "buildkite", "teamcity", "github"))),
    ],
)
def test_select_markers(option: str, env: dict[str, str], expected: MarkerSelection) -> None:
    assert select_markers(option, env) == expected
    assert names_for(option, env) == list(expected.names)


CHOICES = "start, anywhere, auto, stepflow, github, gitlab, buildkite, teamcity"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("jenkins", f"unknown --markers value 'jenkins'; choose from {CHOICES}"),
        ("github,circle", f"unknown --markers value 'circle'; choose from {CHOICES}"),
        ("", f"unknown --markers value ''; choose from {CHOICES}"),
        ("github,", f"unknown --markers value 'github,'; choose from {CHOICES}"),
        ("start,anywhere", "--markers takes one of start or anywhere, not both"),
    ],
)
def test_select_markers_refuses(option: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        names_for(option, {})
    assert str(raised.value) == message
    assert "\n" not in str(raised.value)


def test_every_ci_dialect_loads_and_speaks_the_protocol() -> None:
    for name in ("github", "gitlab", "buildkite", "teamcity"):
        cls = load(name)
        assert cls.name == name
        assert cls.needles and all(n == n.lower() and isinstance(n, bytes) for n in cls.needles)
        assert cls().parse("ordinary output") == []
    assert set(MARKER_CHOICES) >= set(REGISTRY)


@pytest.mark.parametrize(
    ("needles", "region", "expected"),
    [
        ((b"::",), b"a\n::group::x\nb", [(2, 12)]),
        ((b"##teamcity[",), b"x\n##TeamCity[block]\n", [(2, 19)]),
        ((b"##teamcity[",), b"no hashes at all\n" * 3, []),
        ((b"--- ", b"+++ "), b"--- a\n+++ b\nc", [(0, 5), (6, 11)]),
        ((b"section_",), b"SECTION_START:1:x", [(0, 17)]),
        ((b"::", b"::add-mask::"), b"::add-mask::x", [(0, 13)]),
        ((b"step_", b"::"), b"step_start: a ::", [(0, 16)]),
        ((), b"anything", []),
    ],
)
def test_prefilter_spans(needles: tuple[bytes, ...], region: bytes, expected: list[tuple[int, int]]) -> None:
    assert Prefilter(needles).spans(region) == expected


def test_a_needle_holding_a_shorter_one_is_not_scanned_twice() -> None:
    assert Prefilter([b"::add-mask::", b"::", b"STEP_"]).needles == (b"::", b"step_")


@given(st.lists(st.sampled_from([b"STEP_START:x", b"meta:k:v", b"::add-mask::s", b"L" * 10, b"a:b", b"Artifact:",
                                 b"\xc3\xa9", b"step", b"_", b":"]), max_size=30).map(b"\n".join))
def test_prefilter_with_stepflow_needles_matches_candidate_spans(region: bytes) -> None:
    assert Prefilter(markers.NEEDLES, gates=(b":",)).spans(region) == markers.candidate_spans(region)

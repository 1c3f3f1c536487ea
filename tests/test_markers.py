"""Marker parsing: a table of line -> event, candidate spans, and properties that never break."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepflow.dialects.stepflow import (
    Artifact,
    BadMarker,
    Marker,
    Meta,
    StepComplete,
    StepError,
    StepStart,
    candidate_spans,
    parse_line,
)
from stepflow.record import fields

EVENT_TYPES = (StepStart, StepComplete, StepError, Artifact, Meta, BadMarker)
NO_NAME = BadMarker("STEP_START", "step has no name")
META_NO_VALUE = BadMarker("META", "meta needs a key and a value, as META:<key>:<value>")

LINES: list[tuple[str, Marker | None]] = [
    # the five markers
    ("STEP_START:build", StepStart("build")),
    ("STEP_COMPLETE:build", StepComplete("build")),
    ("STEP_ERROR:tests failed", StepError("tests failed")),
    ("ARTIFACT:dist/app.tar.gz", Artifact("dist/app.tar.gz", None)),
    ("ARTIFACT:dist/app.tar.gz:the tarball", Artifact("dist/app.tar.gz", "the tarball")),
    ("META:commit:abc123", Meta("commit", "abc123")),
    # names
    ("STEP_START:  build the app  ", StepStart("build the app")),
    ("STEP_START:Déploiement 🚀", StepStart("Déploiement 🚀")),
    ("STEP_START:a:b", StepStart("a:b")),
    # [k=v] parameters
    ("STEP_START:deploy [env=prod]", StepStart("deploy", {"env": "prod"})),
    (
        "STEP_START:deploy [env=prod] [stop_on_error=true]",
        StepStart("deploy", {"env": "prod", "stop_on_error": True}),
    ),
    ("STEP_START:build[stop_on_error=true]", StepStart("build", {"stop_on_error": True})),
    ("STEP_START:x [a=1,b=2]", StepStart("x", {"a": 1, "b": 2})),
    ("STEP_START:x [ a = 1 , b = two ]", StepStart("x", {"a": 1, "b": "two"})),
    ("STEP_START:x [Stop_On_Error=TRUE]", StepStart("x", {"Stop_On_Error": True})),
    ("STEP_START:x [q=a=b]", StepStart("x", {"q": "a=b"})),
    ("STEP_START:x [k=]", StepStart("x", {"k": ""})),
    ("STEP_START:x [a=1] [a=2]", StepStart("x", {"a": 2})),
    # {k:v} parameters
    ("STEP_START:x {duration:30}", StepStart("x", {"duration": 30})),
    ("STEP_START:x {a:1, b:2}", StepStart("x", {"a": 1, "b": 2})),
    ("STEP_START:x {url: http://h:8080/p}", StepStart("x", {"url": "http://h:8080/p"})),
    ('STEP_START:x {"stop_on_error": true}', StepStart("x", {"stop_on_error": True})),
    # --k=v parameters
    ("STEP_START:x --env=prod", StepStart("x", {"env": "prod"})),
    ("STEP_START:x --a=1  --b=false", StepStart("x", {"a": 1, "b": False})),
    ("STEP_START:x --verbose", StepStart("x --verbose")),
    ("STEP_START:x--a=1", StepStart("x--a=1")),
    # mixes, read from the end backwards
    (
        "STEP_START:x [a=1] {b:2} --c=3 [d=4,e=5]",
        StepStart("x", {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}),
    ),
    ("STEP_START:x [beta] [a=1]", StepStart("x [beta]", {"a": 1})),
    ("STEP_START:x [a=1] --v [b=2]", StepStart("x [a=1] --v", {"b": 2})),
    # value types
    ("STEP_START:x [t=true,f=False]", StepStart("x", {"t": True, "f": False})),
    ("STEP_START:x [i=42,n=-7,z=007]", StepStart("x", {"i": 42, "n": -7, "z": 7})),
    ("STEP_START:x [f=1.5,g=-0.25]", StepStart("x", {"f": 1.5, "g": -0.25})),
    (
        "STEP_START:x [v=1.2.3,w=1e5,h=0x1f,p=+1,d=1.]",
        StepStart("x", {"v": "1.2.3", "w": "1e5", "h": "0x1f", "p": "+1", "d": "1."}),
    ),
    ("STEP_START:x [s=\"true\",t='42']", StepStart("x", {"s": "true", "t": "42"})),
    ('STEP_START:x [msg="a, b"]', StepStart("x", {"msg": "a, b"})),
    ("STEP_START:x [q=\"mixed']", StepStart("x", {"q": "\"mixed'"})),
    ("STEP_START:x [n=" + "9" * 5000 + "]", StepStart("x", {"n": "9" * 5000})),
    # brackets that are part of the name
    ("STEP_START:[beta] rollout", StepStart("[beta] rollout")),
    ("STEP_START:x [beta]", StepStart("x [beta]")),
    ("STEP_START:x []", StepStart("x []")),
    ("STEP_START:x {}", StepStart("x {}")),
    ("STEP_START:x [a=1,beta]", StepStart("x [a=1,beta]")),
    ("STEP_START:x [a=1,]", StepStart("x [a=1,]")),
    ("STEP_START:x [=1]", StepStart("x [=1]")),
    ("STEP_START:x [a=1", StepStart("x [a=1")),
    ("STEP_START:x a=1]", StepStart("x a=1]")),
    # Rich markup is plain text here
    ("STEP_START:[bold red]x[/]", StepStart("[bold red]x[/]")),
    ("STEP_ERROR:[red]boom[/red]", StepError("[red]boom[/red]")),
    # leading white space, BOM, ANSI and OSC sequences
    ("   STEP_START:x", StepStart("x")),
    ("\tSTEP_COMPLETE:x", StepComplete("x")),
    ("\ufeffSTEP_START:x", StepStart("x")),
    ("\x1b[32mSTEP_START:build\x1b[0m", StepStart("build")),
    ("\x1b[1;31mSTEP_ERROR:\x1b[0m disk full\x1b[K", StepError("disk full")),
    ("\x1b[K  \x1b[1mSTEP_START:x", StepStart("x")),
    ("\x1b]0;my title\x07STEP_START:x", StepStart("x")),
    ("\x1b]8;;http://x\x1b\\STEP_START:x", StepStart("x")),
    ("\x1b(B\x1b[mSTEP_START:x", StepStart("x")),
    ("STEP_START:x \x1b[2m[a=1]\x1b[0m", StepStart("x", {"a": 1})),
    (
        "ARTIFACT:\x1b[4mout.txt\x1b[24m:\x1b]8;;file:///o\x07log\x1b]8;;\x07",
        Artifact("out.txt", "log"),
    ),
    ("\x1b]0;STEP_START:x\x07", None),
    ("\x1b[1mSTEP_START\x1b[0m:x", None),
    # case-insensitive keywords, canonical keyword in BadMarker
    ("step_start:x", StepStart("x")),
    ("Step_Complete:x", StepComplete("x")),
    ("step_error:e", StepError("e")),
    ("artifact:a", Artifact("a", None)),
    ("meta:k:v", Meta("k", "v")),
    ("step_complete:", BadMarker("STEP_COMPLETE", "step has no name")),
    ("\u017fTEP_START:x", None),  # long s folds to "s" in Unicode, not in ASCII
    ("ARTİFACT:x", None),
    # trailing white space and \r
    ("STEP_START:build \r", StepStart("build")),
    ("STEP_START:build [a=1]\t \r", StepStart("build", {"a": 1})),
    ("STEP_ERROR:boom\r", StepError("boom")),
    ("META:k:v  \r", Meta("k", "v")),
    # control characters cannot reach a terminal
    ("STEP_START:a\x07b", StepStart("a\ufffdb")),
    ("STEP_START:a\x00b\x7fc", StepStart("a\ufffdb\ufffdc")),
    ("STEP_ERROR:half\rway", StepError("half\ufffdway")),
    ("STEP_ERROR:lone \x1b escape", StepError("lone \ufffd escape")),
    ("STEP_ERROR:c1 \x9b2J", StepError("c1 \ufffd2J")),
    ("STEP_ERROR:tab\there", StepError("tab here")),
    ("META:k\x08ey:v\x0bal", Meta("k\ufffdey", "v\ufffdal")),
    ("ARTIFACT:a\x1fb:d\x01", Artifact("a\ufffdb", "d\ufffd")),
    ("STEP_START:x [k\x07=v\x07]", StepStart("x", {"k\ufffd": "v\ufffd"})),
    # STEP_COMPLETE shares the name logic
    ("STEP_COMPLETE:build[x=1]", StepComplete("build")),
    ("STEP_COMPLETE:deploy --env=prod", StepComplete("deploy")),
    ("STEP_COMPLETE:[beta] rollout", StepComplete("[beta] rollout")),
    # STEP_ERROR, ARTIFACT, META details
    ("STEP_ERROR:", StepError("")),
    ("STEP_ERROR:   ", StepError("")),
    ("STEP_ERROR: exit 2: no such file ", StepError("exit 2: no such file")),
    ("ARTIFACT: out/x.tar : the tarball ", Artifact("out/x.tar", "the tarball")),
    ("ARTIFACT:x:", Artifact("x", None)),
    ("ARTIFACT:x:  ", Artifact("x", None)),
    ("ARTIFACT:x:a:b", Artifact("x", "a:b")),
    ("META:DESCRIPTION: a: b ", Meta("DESCRIPTION", "a: b")),
    ("META:ESTIMATED_DURATION:30", Meta("ESTIMATED_DURATION", "30")),
    ("META:k:", Meta("k", "")),
    # BadMarker
    ("STEP_START:", NO_NAME),
    ("STEP_START:   ", NO_NAME),
    ("STEP_START:[env=prod]", NO_NAME),
    ("STEP_START: [a=1] {b:2} --c=3", NO_NAME),
    ("STEP_START:--env=prod", NO_NAME),
    ("STEP_COMPLETE:[x=1]", BadMarker("STEP_COMPLETE", "step has no name")),
    ("ARTIFACT:", BadMarker("ARTIFACT", "artifact has no path")),
    ("ARTIFACT: :desc", BadMarker("ARTIFACT", "artifact has no path")),
    ("META:k", META_NO_VALUE),
    ("META:", META_NO_VALUE),
    ("META::v", BadMarker("META", "meta has no key")),
    ("META: :v", BadMarker("META", "meta has no key")),
    # not markers
    ("", None),
    ("hello world", None),
    ("STEP_STARTED:x", None),
    ("STEP_START x", None),
    ("STEP_START", None),
    ("STEP-START:x", None),
    ("METADATA:k:v", None),
    ("+ echo STEP_START:x", None),
    ("#5 0.12 STEP_START:x", None),
    ("x STEP_START:y", None),
    ("MY_STEP_START:x", None),
]


@pytest.mark.parametrize(("line", "expected"), LINES)
def test_parse_line(line: str, expected: Marker | None) -> None:
    assert parse_line(line) == expected


ANYWHERE: list[tuple[str, Marker | None]] = [
    # an echoed command (set -x, a Dockerfile's RUN): its output carries the marker, once
    ("+ echo STEP_START:x", None),
    ("++ echo STEP_START:x", None),
    ("#5 [2/4] RUN echo STEP_START:deps && pip install -r requirements.txt", None),
    ("Step 3/5 : RUN echo STEP_START:deps && pip install", None),
    ("+ echo 'META:k:v'", None),
    ("+ echo STEP_START:", None),
    ("+ : STEP_START:x", StepStart("x")),  # `set -x; : STEP_START:x`: only the trace carries it
    # log prefixes: build step numbers, tags, timestamps, levels, compose services
    ("#5 0.12 STEP_START:x", StepStart("x")),
    ("#5 0.12 STEP_START:deps && pip install", StepStart("deps")),
    ("[x]STEP_START:y", StepStart("y")),
    ("[build] STEP_START:y", StepStart("y")),
    ("2024-05-01T10:00:00.123Z STEP_START:y", StepStart("y")),
    ("INFO: STEP_START:y", StepStart("y")),
    ("web_1  | STEP_START:y", StepStart("y")),
    ("app-server | STEP_START:y", StepStart("y")),
    ("STEP_START:x", StepStart("x")),
    ("  \x1b[32mSTEP_START:x", StepStart("x")),
    ("[log] \x1b[1mSTEP_ERROR:\x1b[0m bad", StepError("bad")),
    ("[foo]\x1b[1mSTEP_START:x", StepStart("x")),  # an escape sequence separates like a space
    ("x=1 step_complete:build [a=1]", StepComplete("build")),
    ("-STEP_START:x", StepStart("x")),
    # prose that mentions a marker is not one
    ("grep found: STEP_START:deploy in file.txt", None),
    ("foo: STEP_START:y", None),
    ("a STEP_ERROR:e then STEP_START:x", None),
    ("foo\x1b[1mSTEP_START:x", None),
    ("MY_STEP_START:x", None),
    ("mySTEP_START:x", None),
    ("9STEP_START:x", None),
    ("éSTEP_START:x", None),
    ("MY_STEP_START:x then STEP_ERROR:e", None),
    ("\x1b]0;STEP_START:x\x07", None),
    ("echo STEP_START x", None),
    ("echo STEP_STARTED:x", None),
    ("plain output", None),
]


@pytest.mark.parametrize(("line", "expected"), ANYWHERE)
def test_parse_line_anywhere(line: str, expected: Marker | None) -> None:
    assert parse_line(line, anywhere=True) == expected


def test_params_default_to_a_fresh_dict() -> None:
    first, second = StepStart("a"), StepStart("b")
    assert first.params == {} and first.params is not second.params


@pytest.mark.parametrize(
    ("region", "spans"),
    [
        (b"", []),
        (b"plain output\nmore output\n", []),
        (b"12:00:01 compiling: step 3 of 9 (meta data)\n", []),
        (b"STEP_START:x\nplain\n", [(0, 12)]),
        (b"plain\nMETA:k:v", [(6, 14)]),
        (b"a\nARTIFACT:p\nb\n", [(2, 12)]),
        (b"a\nStep_Error:boom\n", [(2, 17)]),
        (b"+ echo step_complete:x\n", [(0, 22)]),
        (b"STEP_START:a\nx\nSTEP_COMPLETE:a\nMETA:k:v\n", [(0, 12), (15, 30), (31, 39)]),
        (b"META:a:STEP_START:b META:c\n", [(0, 26)]),
        (b"x\r\nMETA:k:v\r\n", [(3, 12)]),
        (b"\n\nmeta:\n\n", [(2, 7)]),
        (b"META:\xff\xfe\x00:v\n", [(0, 10)]),
    ],
)
def test_candidate_spans(region: bytes, spans: list[tuple[int, int]]) -> None:
    assert candidate_spans(region) == spans
    assert candidate_spans(region, anywhere=True) == spans


# Pieces that, joined at random, make lines close to markers: keywords, parameter syntax,
# quotes, escape sequences (whole and cut short) and control characters.
MARKERISH = st.sampled_from(
    "STEP_START: STEP_COMPLETE: STEP_ERROR: ARTIFACT: META: step_start: STEP_START MY_"
    " [ ] { } = : , -- ' \" a k v 1 -2 3.5 true FALSE é".split()
    + [" ", "\t", "\r", "\x00", "\x7f", "\ufeff", "\x1b", "\x1b]", "\x1b[K"]
    + ["\x1b[32m", "\x1b[0m", "\x1b]0;t\x07", "\x1b]8;;u\x1b\\"]
)
MARKERISH_TEXT = st.lists(MARKERISH, max_size=30).map("".join)


def _lines(region: bytes) -> list[tuple[int, int]]:
    """Every (start, end) line in `region`, the way the runner splits it."""
    bounds, start = [], 0
    for index, byte in enumerate(region):
        if byte == 0x0A:
            bounds.append((start, index))
            start = index + 1
    if start < len(region):
        bounds.append((start, len(region)))
    return bounds


@settings(max_examples=300, deadline=None)
@given(line=st.text() | MARKERISH_TEXT, anywhere=st.booleans())
def test_parse_line_never_raises(line: str, anywhere: bool) -> None:
    event = parse_line(line, anywhere=anywhere)
    assert event is None or isinstance(event, EVENT_TYPES)


@settings(max_examples=300, deadline=None)
@given(line=MARKERISH_TEXT)
def test_parsed_text_holds_no_control_characters(line: str) -> None:
    event = parse_line(line, anywhere=True)
    for text in [] if event is None else _texts(event):
        assert not any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in text), text


def _texts(event: Marker) -> list[str]:
    if isinstance(event, StepStart):
        return [event.name, *event.params, *map(str, event.params.values())]
    return [str(getattr(event, item.name)) for item in fields(event)]


REGIONS = st.binary(max_size=300) | st.lists(
    MARKERISH.map(str.encode) | st.sampled_from([b"\n", b"\xff", b"\xe2", b"\x80"]), max_size=40
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(region=REGIONS)
def test_candidate_spans_are_whole_lines_and_miss_no_marker(region: bytes) -> None:
    spans = candidate_spans(region)
    assert spans == sorted(set(spans))
    lines = _lines(region)
    assert set(spans) <= set(lines)
    for start, end in lines:
        text = region[start:end].decode("utf-8", "replace")
        for anywhere in (False, True):
            if parse_line(text, anywhere=anywhere) is not None:
                assert (start, end) in spans, text

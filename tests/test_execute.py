"""execute(): the run is closed and its output stored whatever goes wrong in stepflow mid-run;
`--markers` picks dialects by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stepflow.config import load_settings
from stepflow.dialects.base import StepEnd, StepStart
from stepflow.run.execute import RunOptions, execute
from stepflow.run.lines import LineSplitter
from stepflow.run.options import dialects
from stepflow.views.quiet import QuietView
from tests.conftest import StepflowRunner, query


class BrokenView(QuietView):
    """A view with a bug: the chunk holding the command's later output ("more") raises."""

    def __init__(self, go: Path) -> None:
        super().__init__()
        self.go = go
        self.seen = b""
        self.finished = False

    def raw(self, stream: int, data: bytes) -> bool:
        if b"more" in data:
            raise RuntimeError("view bug")
        self.seen += data
        if b"partial" in self.seen:
            self.go.touch()  # all of the first printf has been read, however the pipe split it
        return True

    def finish(self, state: object) -> None:
        self.finished = True


def test_an_exception_mid_run_stores_the_buffered_output_and_closes_the_run(
    storage: Path, db_path: Path, tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    # The first read ends in a line without a newline: the splitter holds it until the end.
    script = f"printf 'STEP_START:a\\nhello\\npartial'; while [ ! -e {go} ]; do sleep 0.01; done; echo more"
    view = BrokenView(go)
    with pytest.raises(RuntimeError, match="view bug"):
        execute(RunOptions(argv=["bash", "-c", script]), load_settings(storage=storage), view)
    assert view.finished  # the view was closed too (a live view gives the terminal back)
    (status, exit_code, error, lines), = query(db_path, "SELECT status, exit_code, error_message, line_count FROM executions")
    assert (status, exit_code, lines) == ("failed", 1, 2)
    assert error == "stepflow stopped following the command: RuntimeError: view bug"
    assert query(db_path, "SELECT name, status FROM steps") == [("a", "failed")]
    stored = b"\n".join(bytes(d) for (d,) in query(db_path, "SELECT data FROM logs ORDER BY first_line"))  # type: ignore[call-overload]
    assert stored == b"hello\npartial"


def test_markers_take_dialect_names(stepflow: StepflowRunner, db_path: Path) -> None:
    script = "echo STEP_START:a; echo '+ STEP_START:b'"
    assert stepflow("run", "--markers", "stepflow", "--", "bash", "-c", script).returncode == 0
    assert stepflow("run", "--markers", "anywhere,stepflow", "--", "bash", "-c", script).returncode == 0
    names = [n for (n,) in query(db_path, "SELECT s.name FROM steps s JOIN executions e ON e.id = s.execution_id"
                                          " ORDER BY e.created_ts, s.step_index")]
    assert names == ["a", "a", "b"]


@pytest.mark.parametrize("value", ["nosuch", "stepflow,nosuch", ""])
def test_an_unknown_dialect_is_a_usage_error(stepflow: StepflowRunner, db_path: Path, value: str) -> None:
    result = stepflow("run", "--markers", value, "--", "true")
    assert result.returncode == 2
    (line,) = result.stderr.decode().splitlines()
    assert line.startswith("stepflow: error: unknown --markers value ")
    assert line.endswith("; choose from start, anywhere, auto, stepflow, github, gitlab, buildkite, teamcity")
    assert not db_path.exists()  # nothing was run


def test_the_splitter_reads_several_dialects_with_one_prefilter() -> None:
    class Dashes:
        """A dialect without a colon in its needles: `--- name` opens a step (as Buildkite's)."""

        name = "dashes"
        needles = (b"--- ",)

        def parse(self, line: str) -> list[object]:
            return [StepStart(line[4:], nested=True)] if line.startswith("--- ") else []

    class Ends:
        name = "ends"
        needles = (b"::end::",)

        def parse(self, line: str) -> list[object]:
            return [StepEnd()] if line == "::end::" else []

    got: list[object] = []

    class Sink:
        def lines(self, stream: int, data: bytes, count: int, cut: int) -> None:
            got.append(data)

        def marker(self, stream: int, marker: object) -> None:
            got.append(marker)

    splitter = LineSplitter(Sink(), max_line=1 << 20, dialects=[*dialects("start"), Dashes(), Ends()])  # type: ignore[list-item]
    splitter.feed(1, b"--- build\nno colon here\n::end::\nSTEP_START:x\n--- not at start -- \n")
    splitter.close()
    assert got == [StepStart("build", nested=True), b"no colon here", StepEnd(), StepStart("x"),
                   StepStart("not at start -- ", nested=True)]


def test_dialects_are_made_once_each_per_run() -> None:
    made = dialects("start,stepflow")
    assert len(made) == 1 and type(made[0]).__name__ == "StepflowDialect"
    assert getattr(dialects("anywhere")[0], "anywhere") is True  # noqa: B009
    assert sys.modules["stepflow.dialects.stepflow"]


def test_a_plain_run_imports_nothing_heavy(storage: Path) -> None:
    """`stepflow run -- true` is timed by cron users: the CLI framework, Rich, the live view and
    the dialects it was not asked for stay unimported (they cost tens of ms)."""
    import subprocess

    code = ("import sys\nfrom stepflow.cli import main\n"
            "status = main(['run', '-o', 'quiet', '--', 'true'])\n"
            "print(' '.join(sorted(sys.modules)))\nsys.exit(status)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60)
    loaded = set(out.stdout.decode().split())
    heavy = {"typer", "click", "rich", "uuid", "hashlib", "mimetypes", "platform", "stepflow.hints",
             "stepflow.views.live", "stepflow.views.render", "stepflow.dialects.github",
             "stepflow.ci", "stepflow.run.pty", "stepflow.export.report", "stepflow.export.junit"}
    assert "stepflow.run.execute" in loaded and not heavy & loaded


def test_the_store_gets_output_masked_once_across_reads_and_line_cuts(stepflow: StepflowRunner, db_path: Path) -> None:
    """One masker before the fork: a secret split across two reads, or lying across the stored
    line cap (STEPFLOW_MAX_LINE), reaches neither the terminal nor the store."""
    code = ("import os, time\n"
            "os.write(1, b'::add-mask::hunter22-secret\\nfirst hunter22-se')\n"
            "time.sleep(0.2)\n"  # two reads, most likely; the secret must be caught either way
            "os.write(1, b'cret end\\n' + b'x' * 250 + b'hunter22-secret' + b'y' * 50 + b'\\n')\n")
    result = stepflow("run", "--output", "plain", "--", sys.executable, "-c", code, env={"STEPFLOW_MAX_LINE": "256"})
    assert result.returncode == 0, result.stderr
    assert b"hunter22" not in result.stdout and b"first *** end\n" in result.stdout
    stored = [bytes(d) for (d,) in query(db_path, "SELECT data FROM logs ORDER BY first_line")]  # type: ignore[call-overload]
    joined = b"\n".join(stored)
    assert b"hunter22" not in joined and b"hunter" not in joined
    assert joined.startswith(b"first *** end\n" + b"x" * 250 + b"***")


class TinyCI:
    """A dialect as a CI one would be: `>> name` opens a nested group, `<<` closes it, `!! text`
    warns, `ok NAME`/`not ok NAME` are test results, `xx text` fails the group without ending it."""

    name = "tinyci"
    needles = (b">> ", b"<<", b"!! ", b"ok ", b"xx ")

    def parse(self, line: str) -> list[object]:
        from stepflow.dialects.base import Notice, StepError, TestResult

        if line.startswith(">> "):
            return [StepStart(line[3:], nested=True)]
        if line == "<<":
            return [StepEnd()]
        if line.startswith("!! "):
            return [Notice("warning", line[3:])]
        if line.startswith("not ok "):
            return [TestResult(line[7:], "failed")]
        if line.startswith("ok "):
            return [TestResult(line[3:], "passed", 0.25)]
        if line.startswith("xx "):
            return [StepError(line[3:], ends=False, metadata={"line": 3})]
        return []


def test_a_registered_dialect_records_nesting_notices_and_tests(
    storage: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from stepflow import dialects as registry

    monkeypatch.setitem(registry.REGISTRY, "tinyci", "tests.test_execute:TinyCI")
    script = "printf '>> build\\nok unit\\n>> inner\\nnot ok flaky\\nxx broke\\n<<\\n!! disk low\\n<<\\nafter\\n'"
    result = execute(RunOptions(argv=["bash", "-c", script], markers="tinyci,start"), load_settings(storage=storage),
                     QuietView())
    assert (result.exit_status, result.state.status) == (0, "completed")
    rows = query(db_path, "SELECT name, status, error_message, metadata FROM steps ORDER BY step_index")
    assert [(n, s, e) for n, s, e, _ in rows] == [("build", "completed", None), ("inner", "failed", "broke")]
    assert json.loads(str(rows[0][3])) == {"tests": [{"name": "unit", "status": "passed", "duration_s": 0.25}]}
    assert json.loads(str(rows[1][3])) == {"tests": [{"name": "flaky", "status": "failed"}],
                                           "errors": [{"message": "broke", "line": 3}]}
    (warnings, completed), = query(db_path, "SELECT warnings, completed_steps FROM executions")
    assert (json.loads(str(warnings)), completed) == (["disk low"], 1)
    stored = [bytes(d) for (d,) in query(db_path, "SELECT data FROM logs")]  # type: ignore[call-overload]
    assert stored == [b"after"]  # marker lines stay out of the log

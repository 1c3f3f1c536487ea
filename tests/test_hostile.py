"""Hostile output: none of it may crash a run, hang it, grow memory without bound or reach a terminal raw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepflow.run.lines import LineSplitter
from stepflow.run.recorder import Recorder
from stepflow.state import RunState
from tests.conftest import StepflowRunner, py, query

# Linux counts a child's peak RSS from the memory of whoever spawned it (the exec'd process
# starts as a copy), so pytest's own size would show up; a tiny Python forks stepflow instead.
WRAPPER = (
    "import json, os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))\n"
)


def peak_rss_mb(argv: list[str]) -> tuple[int, float]:
    """Run stepflow; (exit status, peak RSS in MB of stepflow or its command, whichever is larger)."""
    done = subprocess.run([sys.executable, "-c", WRAPPER, "-m", "stepflow", "run", "--output", "quiet", "--", *argv],
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    status, kib = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return status, kib / 1024


def test_a_1_gib_line_without_newline_keeps_memory_bounded(db_path: Path) -> None:
    code = "import sys\nw = sys.stdout.buffer.write\nb = b'x' * 65536\nfor _ in range(16384): w(b)\n"
    status, rss = peak_rss_mb(py(code))
    assert status == 0
    assert rss < 120, f"peak RSS {rss:.0f} MB for a 1 GiB line"
    ((length, cut),) = query(db_path, "SELECT length(data), cut FROM logs")
    assert length == 1024 * 1024 and cut == 1024**3 - 1024 * 1024  # the row says how much was cut


def test_a_hundred_thousand_distinct_steps(db_path: Path) -> None:
    code = "import sys\nsys.stdout.write(''.join(f'STEP_START:s{i}\\n' for i in range(100000)))"
    status, rss = peak_rss_mb(py(code))
    assert status == 0
    assert rss < 50, f"peak RSS {rss:.0f} MB for 100,000 steps"  # steps must not pile up anywhere
    assert query(db_path, "SELECT total_steps, completed_steps FROM executions") == [(100000, 100000)]
    assert query(db_path, "SELECT COUNT(*) FROM steps WHERE status = 'completed'") == [(100000,)]


def test_ten_thousand_artifacts(stepflow: StepflowRunner, db_path: Path, tmp_path: Path) -> None:
    code = (
        "import os\nos.makedirs('a', exist_ok=True)\n"
        "for i in range(10000):\n  open(f'a/{i}.txt', 'w').write(str(i))\n  print(f'ARTIFACT:a/{i}.txt')\n"
    )
    result = stepflow("run", "--cwd", str(tmp_path), "--output", "quiet", "--", *py(code), timeout=240)
    assert result.returncode == 0
    assert query(db_path, "SELECT COUNT(*), COUNT(sha256) FROM artifacts") == [(10000, 10000)]


@pytest.mark.parametrize("target, problem", [
    ("/dev/zero", "is not a regular file"),
    ("/dev/null", "is not a regular file"),
    ("loop", "Too many levels of symbolic links"),
    ("dangling-target", "no such file"),
])
def test_artifacts_through_symlinks_never_hang(stepflow: StepflowRunner, tmp_path: Path, target: str, problem: str) -> None:
    link = tmp_path / "link"
    if target == "loop":
        os.symlink(tmp_path / "loop2", tmp_path / "loop")
        os.symlink(tmp_path / "loop", tmp_path / "loop2")
        link = tmp_path / "loop"
    else:
        os.symlink(target, link)
    result = stepflow("run", "--", "echo", f"ARTIFACT:{link}", timeout=60)
    assert result.returncode == 0
    warnings = json.loads(stepflow("show", "last", "--json").stdout)["warnings"]
    assert any(problem in w for w in warnings), warnings


def test_symlink_to_a_file_is_copied(stepflow: StepflowRunner, tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("content")
    os.symlink(tmp_path / "real.txt", tmp_path / "link.txt")
    stepflow("run", "--", "echo", f"ARTIFACT:{tmp_path / 'link.txt'}")
    (art,) = json.loads(stepflow("show", "last", "--json").stdout)["artifacts"]
    assert Path(art["path"]).read_text() == "content"


ESC = "\x1b"
HOSTILE_NAME = f"{ESC}]0;pwned{ESC}\\\\{ESC}[2J[bold red]boom[/] \x07\x08name"


def test_terminal_control_in_names_and_output_never_reaches_show_or_logs(stepflow: StepflowRunner) -> None:
    script = (
        f"printf 'STEP_START:%s\\n' {HOSTILE_NAME!r}; printf 'META:k:%s\\n' $'\\e[31mred'; "
        f"printf 'ARTIFACT:%s\\n' $'/tmp/\\e[2Jx'; printf 'raw \\e]2;title\\a bell \\a erase \\e[2J\\n'"
    )
    assert stepflow("run", "--", "bash", "-c", script).returncode == 0
    shown = stepflow("show", "last")
    logs = stepflow("logs", "last")
    for out in (shown.stdout, logs.stdout):
        assert b"\x1b" not in out and b"\x07" not in out and b"\x08" not in out
    assert b"[bold red]boom[/]" in shown.stdout  # Rich markup is shown as the text it is
    assert b"\x1b]2;title\x07" in stepflow("logs", "last", "--raw").stdout  # --raw: the bytes as recorded


class NullSink:
    def handle(self, event: object) -> None: ...


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"STEP_START:a[stop_on_error=true]\n", b"STEP_COMPLETE:a\n", b"STEP_ERROR:x\n",
                     b"ARTIFACT:/dev/null\n", b"META:k:v\n", b"::add-mask::abc\n", b"\x00\xff\r\n", b"\n"]),
), max_size=40), st.sampled_from([1, 2]))
def test_parser_and_recorder_survive_any_byte_stream(tmp_path: Path, chunks: list[bytes], stream: int) -> None:
    state = RunState(id="r", name="n", command="c", started=0.0)
    recorder = Recorder(state, [NullSink()], artifacts_dir=tmp_path, artifact_max_size=1024,
                        cwd=str(tmp_path))
    splitter = LineSplitter(recorder, max_line=256, marker_streams=frozenset({1, 2}))
    for chunk in chunks:
        splitter.feed(stream, chunk)
    splitter.close()
    recorder.copies.drain()
    assert state.lines >= 0 and state.step_count == len(state.steps)


def test_safe_text_escapes_what_could_mislead_a_terminal() -> None:
    from stepflow.fmt import safe_text

    assert safe_text("ok\u202eevil\u2028x\x1b[2J\tend") == "ok\\u202eevil\\u2028x\\x1b[2J\tend"
    assert safe_text(b"caf\xc3\xa9 \xff") == "café \ufffd"


def test_a_big_artifact_copy_does_not_hold_back_the_output(stepflow: StepflowRunner, db_path: Path, tmp_path: Path) -> None:
    script = ("head -c 200M /dev/zero > big.bin; echo ARTIFACT:big.bin; "
              "for i in $(seq 1 200000); do echo \"line $i ............................................\"; done")
    result = stepflow("run", "--cwd", str(tmp_path), "--output", "quiet", "--", "bash", "-c", script, timeout=240)
    assert result.returncode == 0, result.stderr
    assert query(db_path, "SELECT line_count, lost_lines FROM executions") == [(200000, 0)]
    assert query(db_path, "SELECT file_size, sha256 IS NOT NULL FROM artifacts") == [(200 * 1024 * 1024, 1)]

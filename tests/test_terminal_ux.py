"""What a person sees at a real terminal (a tmux pane read back as text): prompts in the live
view, no stale frame lines, Ctrl-C on a script that traps INT (issue 11)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import query, wait_for
from tests.screen import Screen


@pytest.fixture
def screen(tmp_path: Path) -> Iterator[Screen]:
    s = Screen(tmp_path)
    yield s
    s.close()


def stored_lines(db: Path) -> list[bytes]:
    blocks = query(db, "SELECT data FROM logs ORDER BY first_line")
    return [line for (data,) in blocks for line in bytes(data).split(b"\n")]  # type: ignore[arg-type]


def run_status(db: Path) -> tuple[object, ...] | None:
    try:
        rows = query(db, "SELECT status, exit_code FROM executions")
    except Exception:  # noqa: BLE001 - not created yet
        return None
    return rows[0] if rows and rows[0][0] != "running" else None


def test_a_prompt_reaches_the_screen_before_the_answer_and_the_store_in_order(
        screen: Screen, db_path: Path) -> None:
    script = ('echo STEP_START:confirm; read -p "Deploy to prod? [y/N] " x; echo "got $x"; read z;'
              ' echo STEP_START:after')
    screen.type(f"clear; stepflow run -- bash -c {shlex.quote(script)}")
    # Nothing has been typed: the prompt is on the screen, on a line of its own, cursor after it.
    shown = screen.wait_for(lambda s: any(line.startswith("Deploy to prod? [y/N]") for line in s.splitlines()),
                            what="the prompt")
    assert "got y" not in shown
    screen.type("y")
    # The bare `read z` (no prompt) reads the terminal: the frame gets out of the way (so the
    # echo of the answer cannot push it a line off), leaving the latest output on the screen.
    screen.wait_for(lambda s: "got y" in s.splitlines() and "━" not in s, what="`got y`, frame paused")
    screen.type("")
    final = screen.wait_for_text("stepflow logs ")
    assert wait_for(lambda: run_status(db_path) == ("completed", 0))
    lines = final.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.lstrip().startswith("#  Step"))
    assert not any("running" in line or "━" in line for line in lines[:summary]), final  # no stale frame line
    assert any(line.startswith("Deploy to prod? [y/N] y") for line in lines[:summary])  # as without stepflow
    stored = stored_lines(db_path)
    assert stored.index(b"Deploy to prod? [y/N] ") < stored.index(b"got y")


def test_ctrl_c_on_a_script_that_traps_int_leaves_no_stale_line_and_is_cancelled(
        screen: Screen, db_path: Path) -> None:
    script = "trap 'echo caught; exit 130' INT; echo STEP_START:work; sleep 60 & wait"
    screen.type(f"stepflow run -- bash -c {shlex.quote(script)}")
    screen.wait_for_text("1. work")
    screen.key("C-c")
    final = screen.wait_for_text("stepflow logs ")
    lines = final.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.lstrip().startswith("#  Step"))
    assert not any("running" in line or "━" in line for line in lines[:summary]), final
    assert wait_for(lambda: run_status(db_path) == ("cancelled", 130))
    assert "interrupted" in query(db_path, "SELECT error_message FROM steps")[0][0]  # type: ignore[operator]


def test_the_summary_shows_only_the_exit_status_that_is_known(tmp_path: Path) -> None:
    wide = Screen(tmp_path, cols=200, rows=50)
    try:
        wide.type("clear; stepflow run -- bash -c 'echo STEP_START:a; echo STEP_ERROR:bad; echo STEP_START:b; exit 4'")
        final = wide.wait_for_text("stepflow logs ")
    finally:
        wide.close()
    rows = {words[1]: words for words in (line.split() for line in final.splitlines())
            if len(words) > 2 and words[0] in ("1", "2") and words[1] in ("a", "b")}
    run = next(line.split() for line in final.splitlines() if line.split()[:1] == ["run"])
    assert rows["a"][2:] == ["failed", rows["a"][3], "bad"], final  # no made-up `1`
    assert rows["b"][2:4] == ["failed", rows["b"][3]] and rows["b"][4:] == "command exited with status 4".split()
    assert run[1] == "failed" and run[3] == "4", final  # the command's own, on the run's row


def test_ls_at_80_columns_keeps_the_key_columns_and_names_sh_c_runs_well(screen: Screen, storage: Path) -> None:
    long = "nightly-backup-of-the-production-database-to-the-offsite-bucket-with-verification"
    screen.type(f"stepflow run -o quiet -n {long} -- true; stepflow run -o quiet -- sh -c 'cd /tmp && ./nope.sh';"
                " clear; stepflow ls")
    shown = screen.wait_for(lambda s: "nope.sh" in s and s.rstrip().endswith("$"), what="the list")
    lines = [line for line in shown.splitlines() if line.strip() and line.strip() != "$"]
    assert lines[0].split() == ["ID", "NAME", "STATUS", "STEPS", "DURATION", "STARTED"], shown
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines)
    nope, nightly = lines[1].split(), lines[2].split()
    assert nope[1:3] == ["nope.sh", "failed"] and nope[-1] in ("ago", "now")  # named after the script; STARTED kept
    assert nightly[1].startswith("nightly-backup-of") and nightly[1].endswith("…") and nightly[2] == "completed"


def test_at_40_columns_names_are_cut_not_folded_and_progress_shows_its_latest_state(
        tmp_path: Path, storage: Path) -> None:
    narrow = Screen(tmp_path, cols=40, rows=10)
    long = "a-really-long-step-name-that-will-not-fit"
    script = (f"echo STEP_START:{long}; for i in 1 2 3; do printf '\\rprogress %s0%%' $i; done; read z; echo;"
              " echo STEP_ERROR:the step failed with a long message here; exit 4")
    try:
        narrow.type(f"clear; stepflow run -- bash -c {shlex.quote(script)}")
        live = narrow.wait_for_text("progress 30%")  # the `\r` bar's latest state, drawn live
        assert "progress 10%" not in live
        narrow.type("")
        final = narrow.wait_for_text("stepflow logs ")
    finally:
        narrow.close()
    lines = final.splitlines()
    assert all(len(line) <= 40 for line in lines)
    row = next(line.split() for line in lines if line.startswith("1 "))
    assert row[1].startswith("a-") and row[1].endswith("…") and row[2] == "failed", final  # one line, cut
    assert any(line.split()[:2] == ["run", "failed"] and line.split()[3] == "4" for line in lines if line.split())
    logs = subprocess.run([sys.executable, "-m", "stepflow", "logs"], capture_output=True, timeout=60)
    assert logs.stdout.splitlines()[0] == b"progress 30%"  # stored whole, shown as a terminal left it


def test_logs_on_a_terminal_puts_a_header_between_steps(screen: Screen) -> None:
    screen.type("stepflow run -o quiet -- bash -c 'echo before; echo STEP_START:one; echo out-one;"
                " echo STEP_START:two; echo out-two'; clear; stepflow logs")
    shown = screen.wait_for(lambda s: s.startswith("──") and "out-two" in s, what="the logs")
    lines = [line for line in shown.splitlines() if line.strip()]
    assert lines[:6] == ["── (no step) ──", "before", "── step 1: one ──", "out-one", "── step 2: two ──", "out-two"]

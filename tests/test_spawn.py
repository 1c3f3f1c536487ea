"""stepflow.run.spawn starts the command as Popen(process_group=0, close_fds=True) would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stepflow.run.spawn import PIPE, spawn


def finish(child_pid: int, fd: int | None) -> tuple[int, bytes]:
    data = b""
    if fd is not None:
        with os.fdopen(fd, "rb") as f:
            data = f.read()
    _, status = os.waitpid(child_pid, 0)
    return os.waitstatus_to_exitcode(status), data


def test_the_child_has_its_own_group_default_sigpipe_and_none_of_our_descriptors(tmp_path: Path) -> None:
    inherited = os.open(tmp_path / "f", os.O_CREAT | os.O_RDWR)
    os.set_inheritable(inherited, True)  # as a descriptor the shell left us would be
    probe = "import os; print(os.getpgrp() == os.getpid(), sorted(int(n) for n in os.listdir('/proc/self/fd')))"
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # Python's own, which the child must not keep
    try:
        child = spawn([sys.executable, "-c", probe], stdout=PIPE)
        code, out = finish(child.pid, child.stdout)
        status = spawn(["cat", "/proc/self/status"], stdout=PIPE)  # not Python: it would ignore SIGPIPE itself
        _, text = finish(status.pid, status.stdout)
    finally:
        os.close(inherited)
    group, fds = out.decode().split(" ", 1)
    assert (code, group) == (0, "True")
    assert str(inherited) not in fds.strip("[]\n").split(", ")[3:], fds  # 0-2, then only its own listing fd
    ignored = int(next(line for line in text.decode().splitlines() if line.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1)), hex(ignored)


@pytest.mark.parametrize("how", ["cwd", "path"])
def test_what_posix_spawn_cannot_do_goes_through_popen_with_the_same_result(tmp_path: Path, how: str) -> None:
    tool = tmp_path / "bin" / "hello-tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\npwd\n")
    tool.chmod(0o755)
    if how == "cwd":
        child = spawn([str(tool)], cwd=str(tmp_path), stdout=PIPE)
    else:  # a PATH of the command's own, which Popen searches and posix_spawnp would not
        child = spawn(["hello-tool"], env={**os.environ, "PATH": str(tool.parent)}, cwd=str(tmp_path), stdout=PIPE)
    assert finish(child.pid, child.stdout) == (0, f"{tmp_path}\n".encode())


def test_a_missing_command_raises_as_popen_does() -> None:
    with pytest.raises(FileNotFoundError):
        spawn(["stepflow-no-such-command-here"])


def test_a_run_started_with_stdout_and_stderr_closed_still_records_its_command(tmp_path: Path) -> None:
    env = {**os.environ, "STEPFLOW_STORAGE_PATH": str(tmp_path)}
    done = subprocess.run(f"{sys.executable} -m stepflow run -o quiet -- echo kept >&- 2>&-; "
                          f"{sys.executable} -m stepflow logs last", shell=True, env=env, capture_output=True,
                          text=True, check=False)
    assert done.stdout.strip().endswith("kept"), done

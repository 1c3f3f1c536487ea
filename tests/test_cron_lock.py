"""The overlap lock with real processes: a holder in another process, kill -9, SIGTERM/SIGKILL,
a forged record, other users of one store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepflow import procs
from stepflow.cron.lock import SKIPPED_EXIT, LockBusy, acquire, lock_path, read_holder, safe_name
from stepflow.cron.settings import parse_overlap
from stepflow.errors import UsageError
from tests.conftest import wait_for

HOLDER = r'''
import json, os, signal, subprocess, sys
from pathlib import Path
from stepflow.cron.lock import acquire, lock_path

lock_dir, mode = Path(sys.argv[1]), sys.argv[2]
if "ignore-term" in mode:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
held = acquire(lock_dir, "job", run_id="run-aaaa-1111")
if "child" in mode:
    child = subprocess.Popen(["sleep", "1000"], process_group=0)
    held.set_command(child.pid)
    print(child.pid, flush=True)
if "forge" in mode:
    lock_path(lock_dir, "job").write_text(json.dumps({"pid": int(sys.argv[3]), "pid_started": 1.0}))
print("held", flush=True)
sys.stdin.readline()
'''


class Holder:
    """Another process holding lock `job` until told to go (or killed)."""

    def __init__(self, tmp: Path, lock_dir: Path, mode: str = "", *extra: str, user: int | None = None) -> None:
        script = tmp / "holder.py"
        script.write_text(HOLDER)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(lock_dir), mode, *extra], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, user=user,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        self.child_pid = int(first) if "child" in mode else None
        if self.child_pid is not None:
            first = self.proc.stdout.readline().strip()
        assert first == "held", f"holder did not take the lock (exit {self.proc.poll()})"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=60)
        if self.child_pid is not None:
            with __import__("contextlib").suppress(ProcessLookupError):
                os.kill(self.child_pid, signal.SIGKILL)


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "store" / "locks"


@pytest.fixture
def holders(tmp_path: Path) -> Iterator[list[Holder]]:
    made: list[Holder] = []
    yield made
    for h in made:
        h.stop()


def hold(holders: list[Holder], tmp_path: Path, lock_dir: Path, mode: str = "", *extra: str) -> Holder:
    h = Holder(tmp_path, lock_dir, mode, *extra)
    holders.append(h)
    return h


def test_a_second_run_is_skipped_and_told_who_holds_the_lock(tmp_path: Path, lock_dir: Path, holders: list[Holder]) -> None:
    h = hold(holders, tmp_path, lock_dir)
    with pytest.raises(LockBusy) as caught:
        acquire(lock_dir, "job", on_overlap="skip")
    busy = caught.value
    assert busy.exit_status == SKIPPED_EXIT == 0
    assert busy.holder is not None and busy.holder.pid == h.proc.pid and busy.holder.run_id == "run-aaaa-1111"
    assert busy.holder.pid_started == procs.start_time(h.proc.pid)
    assert str(busy).startswith(f"skipped: lock 'job' is held by run run-aaaa (pid {h.proc.pid}, ")


def test_the_lock_is_free_again_when_its_holder_releases_it(tmp_path: Path, lock_dir: Path, holders: list[Holder]) -> None:
    h = hold(holders, tmp_path, lock_dir)
    h.release()
    with acquire(lock_dir, "job", run_id="run-b") as held:
        assert read_holder(held.path) == held.holder and held.holder.pid == os.getpid()
    assert lock_path(lock_dir, "job").read_bytes() == b""  # released: no holder named any more


def test_kill_9_of_the_holder_frees_the_lock_no_stale_file(tmp_path: Path, lock_dir: Path, holders: list[Holder]) -> None:
    h = hold(holders, tmp_path, lock_dir)
    os.kill(h.proc.pid, signal.SIGKILL)
    h.proc.wait(timeout=60)
    assert read_holder(lock_path(lock_dir, "job")) is not None  # the dead holder's record is still there...
    with acquire(lock_dir, "job", on_overlap="skip") as held:  # ...but the kernel freed the flock
        assert held.holder.pid == os.getpid()


def test_other_names_do_not_collide(tmp_path: Path, lock_dir: Path, holders: list[Holder]) -> None:
    hold(holders, tmp_path, lock_dir)
    with acquire(lock_dir, "job2"), acquire(lock_dir, "job/../x"):
        pass


def test_wait_takes_the_lock_once_the_holder_ends(tmp_path: Path, lock_dir: Path, holders: list[Holder]) -> None:
    h = hold(holders, tmp_path, lock_dir)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(acquire(lock_dir, "job", on_overlap="wait", wait_timeout=120)))
    waiter.start()
    with pytest.raises(LockBusy):  # still held meanwhile
        acquire(lock_dir, "job")
    h.release()
    waiter.join(120)
    assert got and got[0].holder.pid == os.getpid()  # type: ignore[attr-defined]
    got[0].release()  # type: ignore[attr-defined]


def test_wait_gives_up_at_its_bound(tmp_path: Path, lock_dir: Path, holders: list[Holder]) -> None:
    hold(holders, tmp_path, lock_dir)
    with pytest.raises(LockBusy, match=r"was still held after waiting \d+ s by run run-aaaa") as caught:
        acquire(lock_dir, "job", on_overlap="wait", wait_timeout=0.3)
    assert caught.value.waited >= 0.3


def test_kill_stops_the_holder_with_sigterm_and_takes_the_lock(tmp_path: Path, lock_dir: Path, holders: list[Holder]) -> None:
    h = hold(holders, tmp_path, lock_dir)
    with acquire(lock_dir, "job", on_overlap="kill", kill_grace=60) as held:
        assert h.proc.wait(timeout=60) == -signal.SIGTERM
        assert read_holder(held.path).pid == os.getpid()  # type: ignore[union-attr]


def test_kill_escalates_to_sigkill_and_ends_the_commands_group(tmp_path: Path, lock_dir: Path, holders: list[Holder]) -> None:
    h = hold(holders, tmp_path, lock_dir, "ignore-term child")
    assert h.child_pid is not None and procs.start_time(h.child_pid) is not None
    with acquire(lock_dir, "job", on_overlap="kill", kill_grace=0.5):
        assert h.proc.wait(timeout=60) == -signal.SIGKILL
        # The holder's child, in a process group of its own, went too (reaped by init).
        assert wait_for(lambda: procs.start_time(h.child_pid) is None  # type: ignore[arg-type]
                        or _zombie(h.child_pid), timeout=60)  # type: ignore[arg-type]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_kill_never_signals_a_process_the_record_does_not_truly_name(tmp_path: Path, lock_dir: Path,
                                                                      holders: list[Holder]) -> None:
    bystander = subprocess.Popen(["sleep", "1000"])
    try:
        h = hold(holders, tmp_path, lock_dir, "forge", str(bystander.pid))  # names the bystander, wrong start time
        with pytest.raises(LockBusy, match="cannot be identified safely; not killed"):
            acquire(lock_dir, "job", on_overlap="kill", kill_grace=0.2)
        assert bystander.poll() is None and h.proc.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_the_wrapped_command_does_not_inherit_the_lock(tmp_path: Path, lock_dir: Path) -> None:
    with acquire(lock_dir, "job"):
        child = subprocess.Popen(["sleep", "1000"], close_fds=False)
    try:
        with acquire(lock_dir, "job"):  # the child still runs; the lock went with our close
            assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_folder_and_file_modes_let_other_users_share_the_store(lock_dir: Path) -> None:
    old = os.umask(0o077)
    try:
        with acquire(lock_dir, "job") as held:
            assert os.stat(lock_dir).st_mode & 0o7777 == 0o1777
            assert os.stat(held.path).st_mode & 0o777 == 0o666
    finally:
        os.umask(old)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("flock") is None,
                    reason="needs root (to act as another user) and flock(1)")
def test_another_user_can_open_and_lock_the_same_lock_file(tmp_path: Path) -> None:
    """This Python lives under /root, out of other users' reach: flock(1) plays the other user."""
    import pwd

    nobody = pwd.getpwnam("nobody").pw_uid
    shared = Path(tempfile.mkdtemp(prefix="stepflow-lock-"))
    try:
        os.chmod(shared, 0o755)
        old = os.umask(0o077)
        try:
            held = acquire(shared / "locks", "job", run_id="root-run")
        finally:
            os.umask(old)
        other = ["flock", "--nonblock", "--conflict-exit-code", "75", str(held.path), "true"]
        assert subprocess.run(other, user=nobody, cwd="/", timeout=60).returncode == 75  # opened it, found it held
        held.release()
        assert subprocess.run(other, user=nobody, cwd="/", timeout=60).returncode == 0  # and takes it when free
        # Other users make their own lock files in the shared folder too.
        mine = ["flock", "--nonblock", str(shared / "locks" / "nobodys.lock"), "true"]
        assert subprocess.run(mine, user=nobody, cwd="/", timeout=60).returncode == 0
    finally:
        shutil.rmtree(shared)


@pytest.mark.parametrize(("name", "expected"), [
    ("backup-db", "backup-db"),
    ("nightly.etl_2", "nightly.etl_2"),
])
def test_safe_names_keep_plain_names(name: str, expected: str) -> None:
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ["a/b", "../etc", "", "ünï", "x" * 300, ".hidden", "a b"])
def test_safe_names_of_odd_names_are_files_and_distinct(name: str) -> None:
    safe = safe_name(name)
    assert "/" not in safe and not safe.startswith(".") and 0 < len(safe) <= 91
    assert safe != safe_name(name + "!")


def test_a_half_written_record_reads_as_unknown(tmp_path: Path) -> None:
    (tmp_path / "x.lock").write_text('{"pid": 12')
    assert read_holder(tmp_path / "x.lock") is None
    (tmp_path / "y.lock").write_text(json.dumps({"pid": 12, "later_field": 1}))
    assert read_holder(tmp_path / "y.lock").pid == 12  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "mode", "bound", "grace"), [
    ("skip", "skip", None, 15.0), ("wait", "wait", None, 15.0), ("wait=10m", "wait", 600.0, 15.0),
    ("WAIT:1h30m", "wait", 5400.0, 15.0), ("kill", "kill", None, 15.0), ("kill=30s", "kill", None, 30.0),
])
def test_on_overlap_grammar(text: str, mode: str, bound: float | None, grace: float) -> None:
    parsed = parse_overlap(text)
    assert (parsed.mode, parsed.wait_timeout, parsed.kill_grace) == (mode, bound, grace)


@pytest.mark.parametrize("text", ["", "skip=1", "wait=soon", "queue", "kill=-1"])
def test_on_overlap_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--on-overlap"):
        parse_overlap(text)


def test_a_new_store_folder_made_by_the_lock_is_private(tmp_path: Path) -> None:
    with acquire(tmp_path / "new-store" / "locks", "job"):
        assert os.stat(tmp_path / "new-store").st_mode & 0o777 == 0o700

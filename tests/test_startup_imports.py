"""What `stepflow run` imports before it spawns the command (issue 17).

Each module imported at start-up costs every wrapped command: a cron fleet or a `make -j` of
wrapped commands pays it every time. This pins the set, so that a new import on the path
fails here, by name, instead of silently adding milliseconds. Not timed: it reads
`sys.modules` at the moment the command is spawned, through an audit hook (PEP 578).

When a new module is really needed before the spawn, add it to the lists below, and say in
the commit what it costs (`python -X importtime -m stepflow run -o quiet -- true`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Snapshot sys.modules when the wrapped command (argv ending in the marker) is spawned, and
# again when the run has ended.
PROBE = r"""
import sys
MARK = sys.argv[1]
seen = {}
def hook(event, args):
    if "spawn" in seen or event not in ("os.posix_spawn", "subprocess.Popen", "os.exec"):
        return
    if MARK in [str(a) for a in (args[1] or ())]:
        seen["spawn"] = sorted(sys.modules)
        import gc
        seen["collecting_at_spawn"] = gc.isenabled()
sys.addaudithook(hook)
from stepflow.cli import main
status = main(sys.argv[2:] + ["--", "true", MARK])
seen["end"] = sorted(sys.modules)
import gc
seen["collecting_at_end"] = gc.isenabled()
import json
print(json.dumps({"status": status, **seen}))
"""

# What `stepflow run -o quiet -- CMD` into SQLite may import, beyond a bare `python -c pass`:
# stepflow's own modules on the path, the writer thread's (which start while the command is
# spawned: at that moment some may not be imported yet), and these of the standard library.
# Deliberately absent: typing, re, enum, dataclasses, inspect, pathlib, json, shutil,
# subprocess, selectors, datetime, array, queue, and every third-party package but apsw.
OWN = {
    "stepflow", "stepflow.cli", "stepflow.cli.flags", "stepflow.cli.run_flags", "stepflow.config", "stepflow.cron",
    "stepflow.cron.names", "stepflow.dialects", "stepflow.dialects.base", "stepflow.dialects.stepflow",
    "stepflow.errors", "stepflow.events", "stepflow.fmt", "stepflow.jsontext", "stepflow.procs",
    "stepflow.record", "stepflow.run", "stepflow.run.artifacts", "stepflow.run.backlog", "stepflow.run.ci_sink", "stepflow.run.cron",
    "stepflow.run.execute", "stepflow.run.lines", "stepflow.run.options", "stepflow.run.recorder",
    "stepflow.run.resources", "stepflow.run.secrets", "stepflow.run.signals", "stepflow.run.spawn",
    "stepflow.run.supervisor", "stepflow.run.writer", "stepflow.state", "stepflow.store", "stepflow.store.base",
    "stepflow.store.connection", "stepflow.store.schema", "stepflow.store.sqlite", "stepflow.store.sqlite.store",
    "stepflow.store.url", "stepflow.store.zone", "stepflow.timeparse", "stepflow.typenames", "stepflow.views",
    "stepflow.views.base", "stepflow.views.plain", "stepflow.views.quiet",
}
ALLOWED = {
    "apsw", "__future__", "_collections", "_contextvars", "_functools", "_operator", "_weakrefset", "collections",
    "collections.abc", "contextlib", "contextvars", "errno", "fcntl", "functools", "gc", "getpass", "itertools",
    "keyword", "math", "operator", "pwd", "reprlib", "resource", "select", "termios", "threading", "types",
    "warnings",
}
HEAVY = {"typing", "re", "enum", "dataclasses", "inspect", "pathlib", "json", "shutil", "subprocess", "selectors",
         "datetime", "array", "queue", "typer", "click", "rich", "psutil", "psycopg", "hashlib", "base64", "shlex",
         "uuid", "tempfile", "importlib"}


def imported(tmp_path: Path, *args: str) -> tuple[set[str], set[str]]:
    """(modules at the spawn, modules at the end), each beyond a bare interpreter's."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "STEPFLOW_STORAGE_PATH": str(tmp_path / "store")}
    probe = subprocess.run([sys.executable, "-c", PROBE, "stepflow-probe-mark", *args], env=env,
                           capture_output=True, text=True, check=False, timeout=60)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.splitlines()[-1])
    assert found["status"] == 0 and "spawn" in found, found
    # The CLI holds the garbage collector off for the start-up only: a long run collects.
    assert (found["collecting_at_spawn"], found["collecting_at_end"]) == (False, True), found
    bare = subprocess.run([sys.executable, "-c", "import sys; m = sorted(sys.modules); import json; print(json.dumps(m))"],
                          env=env, capture_output=True, text=True, check=True)
    baseline = set(json.loads(bare.stdout))
    return set(found["spawn"]) - baseline, set(found["end"]) - baseline


def test_run_imports_only_the_pinned_modules(tmp_path: Path) -> None:
    at_spawn, at_end = imported(tmp_path, "run", "-o", "quiet")
    assert at_spawn <= at_end
    heavy = sorted(at_end & HEAVY)
    assert not heavy, f"`stepflow run` imports {heavy} (see this file's docstring)"
    new = sorted(at_end - OWN - ALLOWED)
    assert not new, f"`stepflow run` imports new modules {new} (see this file's docstring)"
    main_thread = {"stepflow.run.execute", "stepflow.run.spawn", "stepflow.run.supervisor", "stepflow.views.quiet"}
    assert main_thread <= at_spawn  # the probe saw the spawn itself, not the end of the run


# `ls` and `--version` are typed at a prompt and called by scripts in loops: no typer, no Rich
# (on a terminal either: ls draws its table itself), none of the modules only other commands need.
LS_HEAVY = {"typer", "click", "rich", "psutil", "psycopg", "typing", "pathlib", "hashlib", "importlib", "inspect",
            "dataclasses", "shutil", "subprocess", "threading", "uuid", "tempfile"}
LISTING = r"""
import sys
from stepflow.cli import main
status = main(sys.argv[1:])
import json
print(json.dumps({"status": status, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _modules_of(tmp_path: Path, *args: str, tty: bool = False) -> tuple[set[str], str]:
    """(modules beyond a bare interpreter's, stdout) of `stepflow ARGS`, its stdout a pipe or a terminal."""
    import pty

    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "STEPFLOW_STORAGE_PATH": str(tmp_path / "store"),
           "TERM": "xterm", "COLUMNS": "100"}
    master, slave = pty.openpty() if tty else (None, subprocess.PIPE)
    proc = subprocess.Popen([sys.executable, "-c", LISTING, *args], env=env, stdout=slave, stderr=subprocess.PIPE,
                            text=True)
    if master is not None:
        os.close(slave)  # type: ignore[arg-type]
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        out = b"".join(chunks).decode()
        err = proc.stderr.read()  # type: ignore[union-attr]
    else:
        out, err = proc.communicate(timeout=60)
    assert proc.wait(timeout=60) == 0, err
    found = json.loads(err.splitlines()[-1])
    assert found["status"] == 0, found
    bare = subprocess.run([sys.executable, "-c", "import sys, json; print(json.dumps(sorted(sys.modules)))"],
                          env=env, capture_output=True, text=True, check=True)
    return set(found["modules"]) - set(json.loads(bare.stdout)), out


def test_version_imports_nothing_but_the_package(tmp_path: Path) -> None:
    modules, out = _modules_of(tmp_path, "--version")
    assert out.startswith("stepflow ")
    assert modules <= {"stepflow", "stepflow.cli", "stepflow.config", "stepflow.errors", "stepflow.record", "gc",
                       "__future__", "collections.abc"}, sorted(modules)


def test_ls_reads_without_typer_or_rich_on_a_pipe_and_on_a_terminal(tmp_path: Path) -> None:
    env = {**os.environ, "STEPFLOW_STORAGE_PATH": str(tmp_path / "store")}
    subprocess.run([sys.executable, "-m", "stepflow", "run", "-o", "quiet", "-n", "probe", "-t", "t1", "--", "true"],
                   env=env, check=True, timeout=60)
    for tty in (False, True):
        modules, out = _modules_of(tmp_path, "ls", tty=tty)
        assert "probe" in out and "completed" in out, out
        assert ("\x1b[32mcompleted\x1b[0m" in out) is tty, out  # styled on a terminal only
        heavy = sorted(modules & LS_HEAVY)
        assert not heavy, f"`stepflow ls` ({'terminal' if tty else 'pipe'}) imports {heavy}"

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

import pytest

# Snapshot sys.modules when the wrapped command (argv ending in the marker) is spawned.
PROBE = r"""
import json, sys
MARK = sys.argv[1]
seen = {}
def hook(event, args):
    if seen or event not in ("os.posix_spawn", "subprocess.Popen", "os.exec", "os.fork"):
        return
    argv = args[1] if event in ("os.posix_spawn", "subprocess.Popen", "os.exec") else ()
    if MARK in [str(a) for a in (argv or ())]:
        seen["modules"] = sorted(sys.modules)
sys.addaudithook(hook)
from stepflow.cli import main
status = main(sys.argv[2:] + ["--", "true", MARK])
print(json.dumps({"status": status, "modules": seen.get("modules")}))
"""

# stepflow's own modules on the path of `stepflow run -o quiet -- CMD` into SQLite.
OWN = {
    "stepflow", "stepflow.cli", "stepflow.cli.run_flags", "stepflow.config", "stepflow.errors",
    "stepflow.record",
}

# Modules of the standard library (and apsw) that start-up may import, beyond what a bare
# `python -c pass` has. Deliberately absent: typing, re, dataclasses, inspect, pathlib, json,
# shutil, subprocess, datetime, enum's users beyond signal, and every third-party package.
ALLOWED = {
    "apsw",
}

HEAVY = {"typing", "re", "dataclasses", "inspect", "pathlib", "json", "shutil", "subprocess", "datetime",
         "typer", "click", "rich", "psutil", "psycopg", "hashlib", "base64", "shlex", "uuid", "tempfile"}


def modules_at_spawn(tmp_path: Path, *args: str) -> tuple[set[str], set[str]]:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "STEPFLOW_STORAGE_PATH": str(tmp_path / "store")}
    probe = subprocess.run([sys.executable, "-c", PROBE, "stepflow-probe-mark", *args], env=env,
                           capture_output=True, text=True, check=False, timeout=60)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.splitlines()[-1])
    assert found["status"] == 0 and found["modules"] is not None, found
    bare = subprocess.run([sys.executable, "-c", "import sys; m = sorted(sys.modules); import json; print(json.dumps(m))"],
                          env=env, capture_output=True, text=True, check=True)
    baseline = set(json.loads(bare.stdout))
    extra = set(found["modules"]) - baseline
    return {m for m in extra if m.split(".")[0] == "stepflow"}, {m for m in extra if m.split(".")[0] != "stepflow"}


@pytest.mark.parametrize("output", ["quiet"])
def test_run_imports_only_the_pinned_modules_before_the_spawn(tmp_path: Path, output: str) -> None:
    own, other = modules_at_spawn(tmp_path, "run", "-o", output)
    heavy = sorted(other & HEAVY)
    assert not heavy, f"`stepflow run` imports {heavy} before the spawn (see this file's docstring)"
    assert own == OWN, (f"stepflow modules imported before the spawn changed: new {sorted(own - OWN)},"
                        f" gone {sorted(OWN - own)} (see this file's docstring)")
    assert other <= ALLOWED, f"new modules before the spawn: {sorted(other - ALLOWED)} (see this file's docstring)"

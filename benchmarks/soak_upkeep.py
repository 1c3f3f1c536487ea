"""Soak: kill -9 every upkeep command at random moments; the store must survive each time.

For each of `migrate --to-wal`, `backup`, `rollback --backup`, `prune`, `checkpoint`:
  1. time one undisturbed run on a fresh copy of the store;
  2. --kills times: a fresh copy, start the command, SIGKILL it after a random delay in
     [0, that time], then
       - the store must open (`stepflow ls --json` exits 0 with every run) or refuse with a
         one-line message saying how to finish, and then `health` must say unhealthy;
       - a rerun of the same command must exit 0;
       - afterwards: every run still there (prune: every run it should keep), integrity ok,
         no `.partial` backup, staging file or restore copy left behind.
The store is built by tests/legacy_store.py (pre-WAL format with step log files); migrate
works on it as it is, the other commands on a copy migrated once.

    python benchmarks/soak_upkeep.py [--kills 10] [--executions 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import legacy_store  # noqa: E402

LEFTOVER_MARKS = (".partial", "-import-", "-restore-", ".restoring.tmp")


def stepflow(storage: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFLOW_")}
    env["STEPFLOW_STORAGE_PATH"] = str(storage)
    return subprocess.run([sys.executable, "-m", "stepflow", *args], env=env, capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def start(storage: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFLOW_")}
    env["STEPFLOW_STORAGE_PATH"] = str(storage)
    return subprocess.Popen([sys.executable, "-m", "stepflow", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def leftovers(storage: Path) -> list[str]:
    return sorted(str(p.relative_to(storage)) for p in storage.rglob("*")
                  if p.is_file() and any(mark in p.name for mark in LEFTOVER_MARKS))


def run_ids(storage: Path) -> set[str] | None:
    done = stepflow(storage, "ls", "--limit", "1000000", "--json")
    return {r["id"] for r in json.loads(done.stdout)} if done.returncode == 0 else None


def commands(backup: Path) -> dict[str, list[str]]:
    return {
        "migrate": ["migrate", "--to-wal"],
        "backup": ["backup"],
        "rollback --backup": ["rollback", "--backup", str(backup)],
        "prune": ["prune", "--older-than", "2025-12-01"],
        "checkpoint": ["checkpoint", "--mode", "truncate"],
    }


def one_kill(name: str, argv: list[str], template: Path, work: Path, delay: float,
             expected: set[str]) -> dict[str, Any]:
    storage = work / "store"
    shutil.rmtree(storage, ignore_errors=True)
    shutil.copytree(template, storage)
    proc = start(storage, *argv)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    outcome: dict[str, Any] = {"killed": killed, "delay": round(delay, 3), "left_after_kill": leftovers(storage)}
    ids = run_ids(storage)
    if ids is None:
        msg = stepflow(storage, "ls").stderr.decode(errors="replace").strip()
        health = stepflow(storage, "health")
        outcome["state"] = "refused with a message"
        outcome["message"] = msg
        outcome["ok_state"] = (msg.startswith("stepflow: error:") and "\n" not in msg
                               and health.returncode != 0)
    else:
        outcome["state"] = "opens"
        outcome["ok_state"] = True
    rerun = stepflow(storage, *argv)
    outcome["rerun_rc"] = rerun.returncode
    if rerun.returncode != 0:
        outcome["rerun_err"] = rerun.stderr.decode(errors="replace").strip()[-300:]
    after = run_ids(storage)
    outcome["runs_ok"] = after is not None and (after >= expected if name != "prune" else after == expected)
    outcome["left_after_rerun"] = leftovers(storage)
    integrity = subprocess.run(["python3", "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1])"
                                ".execute('PRAGMA integrity_check').fetchone()[0])",
                                str(storage / "database" / "stepflow.db")], capture_output=True)
    outcome["integrity"] = integrity.stdout.decode().strip()
    outcome["ok"] = (outcome["ok_state"] and rerun.returncode == 0 and outcome["runs_ok"]
                     and not outcome["left_after_rerun"] and outcome["integrity"] == "ok")
    return outcome


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10, help="kills per command")
    ap.add_argument("--executions", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", help="one command (e.g. migrate)")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="stepflow-soak-upkeep-") as tmp:
        work = Path(tmp)
        legacy = work / "legacy"
        legacy_store.build(legacy, executions=args.executions)
        migrated = work / "migrated"
        shutil.copytree(legacy, migrated)
        assert stepflow(migrated, "migrate", "--to-wal").returncode == 0
        shutil.rmtree(migrated / "backups")
        keep = work / "keep.db"
        assert stepflow(migrated, "backup", str(keep)).returncode == 0
        all_ids = run_ids(migrated) or set()
        pruned = work / "pruned"
        shutil.copytree(migrated, pruned)
        assert stepflow(pruned, "prune", "--older-than", "2025-12-01").returncode == 0
        after_prune = run_ids(pruned) or set()
        shutil.rmtree(pruned)
        print(f"store: {args.executions:,} legacy runs with step log files (tests/legacy_store.py);"
              f" {args.kills} kills per command, seed {args.seed}")
        print(f"{'command':<18} {'kills':>5} {'landed':>6} {'opened':>6} {'message':>7} {'rerun ok':>8}"
              f" {'runs ok':>7} {'left after kill':>15} {'left after rerun':>16} {'all ok':>6}")
        failures = []
        for name, argv in commands(keep).items():
            if args.only and name != args.only:
                continue
            template = legacy if name == "migrate" else migrated
            expected = after_prune if name == "prune" else all_ids
            t = time.monotonic()
            clean = work / "clean"
            shutil.rmtree(clean, ignore_errors=True)
            shutil.copytree(template, clean)
            assert stepflow(clean, *argv).returncode == 0, name
            duration = time.monotonic() - t
            shutil.rmtree(clean)
            results = [one_kill(name, argv, template, work, rnd.uniform(0.05, duration + 0.3), expected)
                       for _ in range(args.kills)]
            landed = sum(r["killed"] for r in results)
            print(f"{name:<18} {len(results):>5} {landed:>6} {sum(r['state'] == 'opens' for r in results):>6}"
                  f" {sum(r['state'] != 'opens' for r in results):>7} {sum(r['rerun_rc'] == 0 for r in results):>8}"
                  f" {sum(bool(r['runs_ok']) for r in results):>7}"
                  f" {sum(bool(r['left_after_kill']) for r in results):>15}"
                  f" {sum(bool(r['left_after_rerun']) for r in results):>16} {sum(r['ok'] for r in results):>6}")
            failures += [(name, r) for r in results if not r["ok"]]
            messages = {r["message"] for r in results if r["state"] != "opens"}
            for message in sorted(messages):
                print(f"    message seen: {message}")
        for name, r in failures[:10]:
            print(f"FAILED {name}: {json.dumps(r)[:600]}")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

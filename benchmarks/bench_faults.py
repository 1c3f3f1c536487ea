"""Figures for issue 12: each fault, lines/steps lost, seconds past the command, spool bytes.

Usage (as root for `full`, which mounts a 20 MB tmpfs):
    .venv/bin/python benchmarks/bench_faults.py base|lock|stop|full
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apsw

RT = None
PY = sys.executable
LINES = int(os.environ.get("LINES_PER_RUN", "1000"))
SCRIPT = f"echo STEP_START:one; seq 1 {LINES}; echo STEP_START:two; echo last; exit $0"


def env(storage):
    return {**os.environ, "STEPFLOW_STORAGE_PATH": str(storage), "XDG_RUNTIME_DIR": str(RT)}


def sf(storage, *args):
    return subprocess.run([PY, "-m", "stepflow", *args], capture_output=True, env=env(storage))


def runs(storage, codes, script=SCRIPT):
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            [PY, "-m", "stepflow", "run", "--output", "quiet", "--", "bash", "-c", script, str(rc)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env(storage),
        )
        for rc in codes
    ]
    out = []
    for p in procs:
        _o, err = p.communicate()
        out.append((p.returncode, time.monotonic() - t0, err.decode()))
    return out


def spool_bytes(storage):
    return sum(f.stat().st_size for d in (storage / "spool", RT) if d.exists() for f in d.rglob("*.spool"))


def stored(db):
    c = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    r = c.execute(
        "SELECT e.status, e.exit_code, (SELECT COALESCE(SUM(line_count),0) FROM logs l WHERE l.execution_id=e.id),"
        " (SELECT COUNT(*) FROM steps s WHERE s.execution_id=e.id) FROM executions e ORDER BY created_ts"
    ).fetchall()
    c.close()
    return r


def report(name, results, storage, db, expected_lines, codes, t_cmd):
    sb = spool_bytes(storage)
    ls = sf(storage, "ls", "--json")
    rows = stored(db)[1:]
    lost_lines = sum(expected_lines - r[2] for r in rows) + expected_lines * (len(codes) - len(rows))
    lost_steps = sum(2 - r[3] for r in rows) + 2 * (len(codes) - len(rows))
    statuses = sorted((r[0], r[1]) for r in rows)
    print(
        json.dumps(
            {
                "fault": name,
                "exit_codes": [r[0] for r in results],
                "max_wall_s": round(max(r[1] for r in results), 2),
                "command_alone_s": round(t_cmd, 2),
                "spool_bytes_before_replay": sb,
                "lines_lost": lost_lines,
                "steps_lost": lost_steps,
                "statuses": statuses,
                "ls_rc": ls.returncode,
            }
        )
    )


def cmd_alone():
    t = time.monotonic()
    subprocess.run(["bash", "-c", SCRIPT, "0"], stdout=subprocess.DEVNULL)
    return time.monotonic() - t


def lock_fault(base):
    storage = base / "lock" / "s"
    db = storage / "database" / "stepflow.db"
    sf(storage, "run", "--", "true")
    h = subprocess.Popen(
        [
            PY,
            "-c",
            f"import apsw,sys; c=apsw.Connection({str(db)!r}); c.execute('BEGIN IMMEDIATE');"
            " c.execute('CREATE TABLE IF NOT EXISTS z(x)'); print('ok',flush=True); sys.stdin.read()",
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
    )
    h.stdout.readline()
    codes = [0, 1, 2, 3, 4]
    res = runs(storage, codes)
    h.kill()
    h.wait()
    report(
        "lock held across 5 runs (BEGIN IMMEDIATE in another process)", res, storage, db, LINES + 1, codes, cmd_alone()
    )


def stop_fault(base):
    storage = base / "stop" / "s"
    db = storage / "database" / "stepflow.db"
    sf(storage, "run", "--", "true")
    h = subprocess.Popen(
        [
            PY,
            "-c",
            f"import apsw,os,signal; c=apsw.Connection({str(db)!r}); c.execute('BEGIN IMMEDIATE');"
            " c.execute('CREATE TABLE IF NOT EXISTS z(x)'); os.kill(os.getpid(), signal.SIGSTOP)",
        ]
    )
    while Path(f"/proc/{h.pid}/stat").read_text().split(") ")[1][0] != "T":
        time.sleep(0.05)
    codes = [0, 5]
    res = runs(storage, codes)
    print("   warning:", [line for line in res[0][2].splitlines() if "locked" in line][0][:220])
    h.kill()
    h.wait()
    report("writer SIGSTOPped inside its transaction", res, storage, db, LINES + 1, codes, cmd_alone())


def full_fault(base):
    mnt = base / "full"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt)], check=True)
    try:
        storage = mnt / "s"
        db = storage / "database" / "stepflow.db"
        sf(storage, "run", "--", "true")
        import shutil

        free = shutil.disk_usage(mnt).free
        with open(mnt / "filler", "wb") as f:
            f.write(b"\0" * (free - 3 * 1024 * 1024))  # 3 MiB left: the 500,010 lines need ~12
        script = "for i in $(seq 1 10); do echo STEP_START:s$i; seq -f 'output line %08g' 1 50000; done; exit 3"
        t = time.monotonic()
        subprocess.run(["bash", "-c", script], stdout=subprocess.DEVNULL)
        tc = time.monotonic() - t
        res = runs(storage, [3], script)
        sb = spool_bytes(storage)
        (mnt / "filler").unlink(missing_ok=True)
        ls = sf(storage, "ls", "--json")
        rows = stored(db)[1:]
        print(
            json.dumps(
                {
                    "fault": "20 MB tmpfs, 500,010 lines, exit 3",
                    "exit_codes": [r[0] for r in res],
                    "wall_s": round(res[0][1], 2),
                    "command_alone_s": round(tc, 2),
                    "spool_bytes_before_replay": sb,
                    "stored": rows,
                    "lines_lost": 500000 - sum(r[2] for r in rows),
                    "steps_lost": 10 - sum(r[3] for r in rows),
                    "ls": [r["status"] for r in json.loads(ls.stdout)],
                }
            )
        )
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def baseline(base):
    storage = base / "base" / "s"
    db = storage / "database" / "stepflow.db"
    sf(storage, "run", "--", "true")
    codes = [0, 1, 2, 3, 4]
    res = runs(storage, codes)
    report("baseline: the same 5 runs, no fault", res, storage, db, LINES + 1, codes, cmd_alone())


base = Path(tempfile.mkdtemp(prefix="sfm"))
RT = base / "rt"
{"base": baseline, "lock": lock_fault, "stop": stop_fault, "full": full_fault}[sys.argv[1]](base)

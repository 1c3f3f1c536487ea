"""Instructions, not seconds: what `--version`, `ls` and `run -- true` execute, against another checkout.

Wall time on a shared 2-core machine swings 2-5x; `valgrind --tool=callgrind` counts the
instructions a command executes, the same from run to run whatever else the machine does.
Under valgrind a run lasts long enough that its resource sampler sometimes starts (and imports
psutil, ~55M instructions) where a real run of `true` never gets that far: each figure is the
least of --repeat counts. Each arm runs in a fresh interpreter in this tree
and, with --against, in the other tree (as `python -c` from its folder, so its own
`stepflow` package is the one imported); `python -c pass` is the floor both share.
`--launcher-re` imports `re` first in the other tree, as pip's generated `stepflow` launcher
did before bin/stepflow replaced it.

    git worktree add /tmp/base <commit>
    python benchmarks/bench_instructions.py [--against /tmp/base [--launcher-re]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARMS = {
    "stepflow --version": ["--version"],
    "stepflow ls": ["ls"],
    "stepflow run -o quiet -- true": ["run", "-o", "quiet", "--", "true"],
    "stepflow run -o plain -- true": ["run", "-o", "plain", "--", "true"],
}


def instructions(code: str, cwd: Path, env: dict[str, str]) -> int:
    """Instructions callgrind counts for `python -c code`, run from `cwd`."""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg", sys.executable,
                               "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    for line in done.stderr.splitlines():
        if "refs:" in line:
            return int(line.split("refs:")[1].replace(",", "").strip())
    raise SystemExit(f"no instruction count from valgrind: {done.stderr[-500:]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", type=Path, help="another checkout of stepflow to count beside this one")
    p.add_argument("--launcher-re", action="store_true", help="import re first in the other tree (pip's launcher)")
    p.add_argument("--repeat", type=int, default=3, help="counts per figure; the least is shown (default 3)")
    args = p.parse_args()
    if shutil.which("valgrind") is None:
        print("bench_instructions: needs valgrind (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="stepflow-bench-instr-") as work:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFLOW_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["STEPFLOW_STORAGE_PATH"] = str(Path(work) / "store")

        def code(argv: list[str], prefix: str = "") -> str:
            return f"{prefix}import sys; from stepflow.cli import main; sys.exit(main({argv!r}))"

        trees = [("this tree", ROOT, "")]
        if args.against is not None:
            trees.append((str(args.against), args.against.resolve(), "import re; " if args.launcher_re else ""))
        for _, tree, prefix in trees:  # a store with a few runs for ls, and every .pyc written
            for _ in range(3):
                subprocess.run([sys.executable, "-c", code(ARMS["stepflow run -o quiet -- true"], prefix)], cwd=tree,
                               env=env, capture_output=True, check=False)
        floor = instructions("pass", ROOT, env)
        print(f"python -c pass: {floor:,} instructions (the floor every arm includes)\n")
        header = ["arm", *(name for name, _, _ in trees)]
        def least(argv: list[str], tree: Path, prefix: str) -> str:
            return f"{min(instructions(code(argv, prefix), tree, env) for _ in range(args.repeat)):,}"

        rows = [[name, *(least(argv, tree, prefix) for _, tree, prefix in trees)] for name, argv in ARMS.items()]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, ["-" * w for w in widths], *rows]:
            print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(
                zip(row, widths, strict=True))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run `show`, `show --json`, `logs` and `logs --timestamps` on every run of a store, in one
process (a subprocess per command would take minutes on a real store): prints one JSON
object, run id -> what each command gave. Used by test_migrate_real.py.

Usage: python tests/legacy_check.py STORAGE [--times-only]

`--times-only`: only `show --json` and `logs --timestamps` (what another reader's zone may change).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

import typer

from stepflow.cli.app import app
from stepflow.errors import StepflowError

# Built once: typer makes the click command anew on every call, most of a call's time here.
COMMAND = typer.main.get_command(app)


def main(argv: list[str]) -> int:
    """What stepflow.cli.main does with these arguments: the exit status, errors on stderr."""
    try:
        status = COMMAND.main(args=argv, prog_name="stepflow", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    except StepflowError as exc:
        print(f"stepflow: error: {exc}", file=sys.stderr)
        return int(exc.exit_status)
    return status if isinstance(status, int) else 0


def run(argv: list[str]) -> tuple[int, bytes]:
    buffer = io.BytesIO()
    out = io.TextIOWrapper(buffer, encoding="utf-8", errors="surrogateescape", write_through=True)
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    out.flush()
    return status, buffer.getvalue() + err.getvalue().encode()


def check(storage: str, *, times_only: bool = False) -> dict[str, object]:
    status, listed = run(["ls", "--storage", storage, "--limit", "100000", "--json"])
    assert status == 0, listed
    runs = json.loads(listed)
    result: dict[str, object] = {"ls": runs}
    for item in runs:
        rid = item["id"]
        show_rc, show_out = (0, b"") if times_only else run(["show", "--storage", storage, rid])
        json_rc, json_out = run(["show", "--storage", storage, "--json", rid])
        logs_rc, logs_out = (0, b"") if times_only else run(["logs", "--storage", storage, "--raw", rid])
        ts_rc, ts_out = run(["logs", "--storage", storage, "--timestamps", "--raw", rid])
        result[rid] = {
            "rc": [show_rc, json_rc, logs_rc, ts_rc],
            "show": show_out.decode("utf-8", "replace"),
            "json": json.loads(json_out) if json_rc == 0 else json_out.decode("utf-8", "replace"),
            "logs": logs_out.decode("utf-8", "surrogateescape").split("\n")[:-1] if logs_out else [],
            "stamps": [line.split(" ", 1)[0] for line in ts_out.decode("utf-8", "replace").split("\n")[:-1]],
        }
    return result


if __name__ == "__main__":
    sys.stdout.write(json.dumps(check(sys.argv[1], times_only="--times-only" in sys.argv[2:]), ensure_ascii=False))

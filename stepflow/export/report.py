"""A stored run as a JUnit XML file: the run read through stepflow.history, failing steps'
output tails from its log, the XML from export.junit, written atomically.

`run --junit FILE` and `stepflow export junit ID|last` both come here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import deque
from pathlib import Path

from stepflow.config import Settings
from stepflow.store.base import Store

TAIL_LINES = 50  # a failed step's last lines in its <system-out>


def junit_report(store: Store, ref: str) -> str:
    """The JUnit XML of the run `ref` names (an id, a prefix, `last`). Read-only, but for the
    abandoned sweep history.show_run does.

    Raises:
        NotFoundError, UsageError: no such run (see history.resolve).
    """
    from stepflow.export.junit import junit_xml, steps_needing_output
    from stepflow.history.logs import lines
    from stepflow.history.runs import show_run

    detail = show_run(store, ref)
    outputs: dict[int, str] = {}
    for index in steps_needing_output(detail):
        tail: deque[bytes] = deque(maxlen=TAIL_LINES)
        tail.extend(line.text for line in lines(store, detail["id"], step_index=index))
        if tail:
            outputs[index] = b"\n".join(tail).decode("utf-8", "replace")
    return junit_xml(detail, outputs=outputs)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in its folder and a rename, so a reader
    (the CI's report step) never sees half a report.

    Raises:
        OSError: the folder cannot be written.
    """
    folder = path.parent if str(path.parent) else Path(".")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def write_junit(settings: Settings, run_id: str, path: Path) -> str | None:
    """`run --junit`: the run's report to `path`. Returns the problem as one line (the store
    cannot be read, the file cannot be written), None when written: a report that could not
    be written must not change the run's exit status."""
    from stepflow.errors import StepflowError
    from stepflow.store import open_store

    try:
        store = open_store(settings, readonly=True)
        try:
            text = junit_report(store, run_id)
        finally:
            store.close()
        write_atomically(path, text)
    except StepflowError as exc:
        return f"JUnit report not written to {path}: {exc}"
    except OSError as exc:
        return f"JUnit report not written to {path}: {exc.strerror or exc}"
    return None

"""Copy a file a run announced (ARTIFACT:<path>) into the store, with its size and sha256.

Never hangs and never raises for a bad path: a missing file, a directory, a FIFO or device,
an unreadable or oversized file is reported as a warning and recorded with its path only.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable

from stepflow.record import field, record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    import queue
    from pathlib import Path  # pathlib only once an artifact or a spool needs it (start-up, issue 17)

CHUNK = 1024 * 1024
NAME_MAX = 255  # bytes in one file name, on Linux file systems
KINDS = {  # artifact_type as the legacy tool named them, from the mime type's family
    "image": "image", "text/html": "report", "application/json": "data", "text/csv": "data",
    "application/pdf": "document", "application/zip": "archive", "application/gzip": "archive",
    "application/x-tar": "archive", "text/plain": "log",
}


@record
class Copied:
    """What became of one artifact: `stored` is None when it was not copied, and `problem` says why."""

    source: str
    stored: str | None = None
    size: int = 0
    sha256: str | None = None
    mime_type: str | None = None
    kind: str = "other"
    problem: str | None = None


@record
class Budget:
    """One run's artifacts: the same file (path, size, mtime) copied once however often it is
    named; a total cap for the run; a floor of free space on the store's disk. Beyond either,
    artifacts are recorded by path (with a warning), so one run never fills the disk for others."""

    run_max: int
    min_free: int
    used: int = 0
    seen: dict[tuple[str, int, int], Copied] = field(default_factory=dict)

    def refusal(self, size: int, dest_dir: Path) -> str | None:
        if self.used + size > self.run_max:
            return f"the run's artifacts would pass {self.run_max} bytes (STEPFLOW_ARTIFACT_RUN_MAX)"
        free = _free_bytes(dest_dir)
        if free is not None and free - size < self.min_free:
            return (f"it would leave less than {self.min_free} bytes free on the store's disk"
                    " (STEPFLOW_ARTIFACT_MIN_FREE)")
        return None


def _free_bytes(folder: Path) -> int | None:
    for place in (folder, *folder.parents):
        try:
            st = os.statvfs(place)  # shutil.disk_usage's own sum, without importing shutil at start-up
            return st.f_bavail * st.f_frsize
        except OSError:
            continue
    return None


def artifact_type(mime: str | None) -> str:
    if not mime:
        return "other"
    return KINDS.get(mime) or KINDS.get(mime.split("/", 1)[0]) or "other"


def copy_artifact(source: Path, dest_dir: Path, artifact_id: str, *, max_size: int,
                  budget: Budget | None = None) -> Copied:
    """Copy `source` to `dest_dir/<artifact_id>_<name>`, hashing as it goes (see Budget)."""
    import hashlib  # here, not at the top: most runs announce no artifact, and start-up counts
    import mimetypes

    mime = mimetypes.guess_type(source.name)[0]
    result = Copied(str(source), mime_type=mime, kind=artifact_type(mime))
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang the run.
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        result.problem = "no such file"
        return result
    except IsADirectoryError:
        result.problem = "is a directory"
        return result
    except OSError as exc:
        result.problem = exc.strerror or str(exc)
        return result
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            result.problem = "is a directory"
        elif not stat.S_ISREG(info.st_mode):
            result.problem = "is not a regular file"
        elif info.st_size > max_size:
            result.size = info.st_size
            result.problem = f"is {info.st_size} bytes, over the {max_size}-byte artifact limit"
        if result.problem:
            return result
        key = (os.path.realpath(source), info.st_size, info.st_mtime_ns)
        if budget is not None:
            earlier = budget.seen.get(key)
            if earlier is not None:  # named again, unchanged: one copy, referenced twice
                return replace(earlier)
            refused = budget.refusal(info.st_size, dest_dir)
            if refused:
                result.size = info.st_size
                result.problem = f"recorded by path: {refused}"
                return result
        os.set_blocking(fd, True)
        dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        dest = dest_dir / stored_name(artifact_id, source.name)
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(os.dup(fd), "rb") as src, open(dest, "wb", opener=_private) as out:
            while chunk := src.read(CHUNK):
                if size + len(chunk) > max_size:
                    raise OSError(0, f"grew past the {max_size}-byte artifact limit while copied")
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        result.stored, result.size, result.sha256 = str(dest), size, digest.hexdigest()
        if budget is not None:
            budget.used += size
            budget.seen[key] = result
    except OSError as exc:
        result.problem = exc.strerror or str(exc)
        if result.stored is None:
            with contextlib.suppress(OSError):
                (dest_dir / stored_name(artifact_id, source.name)).unlink(missing_ok=True)
    finally:
        os.close(fd)
    return result


class CopyQueue:
    """Copies artifacts on a thread of their own, in the order announced.

    Not on the reader's thread (a 1 GiB copy would block the command's pipe) nor on the
    writer's (output would wait behind it, and past a bound be dropped). The thread starts
    with the first artifact, so runs without any pay nothing.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] | None = None
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        if self._jobs is None:
            import queue  # with the first artifact: start-up never pays for it (issue 17)

            self._jobs = queue.SimpleQueue()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="stepflow-artifacts", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def drain(self) -> None:
        """Wait for every job submitted so far (the run has ended)."""
        if self._thread is not None and self._jobs is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _work(self) -> None:
        assert self._jobs is not None
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:  # noqa: BLE001, S110 - copy_artifact reports its own problems;
                pass  # anything else must not end the copies that follow


def stored_name(artifact_id: str, name: str) -> str:
    """`<artifact id>_<name>`, the legacy layout, cut to fit a 255-byte file name."""
    raw = name.encode("utf-8", "surrogateescape")[: NAME_MAX - len(artifact_id) - 1]
    return f"{artifact_id}_{raw.decode('utf-8', 'ignore') or 'artifact'}"


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)

"""The local spool: what the store did not take in time, kept on disk and written to it later.

A run's writer appends each batch the store refused (locked past a short wait, disk full,
unreachable) to `<storage>/spool/<run id>.spool`, one JSON line per batch, fsync'd: `seq`
numbers the batches of a run in order. When the store's own disk is the full one, the
batch goes to a fallback folder instead (settings.spool_folders). Each line holds a
whole batch; a line cut short by a crash is ignored.

`replay` gives each batch to `Store.apply_spooled(run_id, seq, writes)`, which records
(run id, seq) in the same transaction as the writes: a batch is applied exactly once however
often replay runs. A spool file is locked (flock) by its writer while its run records, so
replay by another command never races the writer; replay takes the lock, applies, and
removes the file.

Backend-neutral: only stepflow.store.base is imported.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator, Sequence

from stepflow.errors import StepflowError
from stepflow.record import asdict, field, record
from stepflow.store.base import (
    Artifact,
    LogBlock,
    NewArtifact,
    NewRun,
    NewStep,
    Run,
    RunChange,
    Step,
    StepChange,
    Store,
    Write,
)

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from pathlib import Path  # pathlib only once an artifact or a spool needs it (start-up, issue 17)
    from typing import Any

SUFFIX = ".spool"
REPLAY_WAIT = 0.5  # seconds a history command waits for the write lock per batch it replays


# -- serialising typed writes ---------------------------------------------------------------


def encode_write(w: Write) -> dict[str, Any]:
    """A write as JSON-ready data (bytes as base64)."""
    import base64  # here: a run that never spools never imports it (start-up, issue 17)

    if isinstance(w, LogBlock):
        return {"t": "log", "run": w.execution_id, "step": w.step_index, "stream": w.stream,
                "first": w.first_line, "count": w.line_count, "ts": w.ts,
                "data": base64.b64encode(w.data).decode("ascii"), "cut": w.cut}
    if isinstance(w, RunChange | StepChange):
        return {"t": "run_change" if isinstance(w, RunChange) else "step_change", "id": w.id, "v": w.changes()}
    if isinstance(w, NewRun):
        return {"t": "run", "v": asdict(w.run)}
    if isinstance(w, NewStep):
        return {"t": "step", "v": asdict(w.step)}
    if isinstance(w, NewArtifact):
        return {"t": "artifact", "v": asdict(w.artifact)}
    raise TypeError(f"not a store write: {type(w).__name__}")


def decode_write(d: dict[str, Any]) -> Write:
    """The write `encode_write` gave `d` for."""
    import base64

    kind = d["t"]
    if kind == "log":
        return LogBlock(d["run"], d["step"], d["stream"], d["first"], d["count"], d["ts"],
                        base64.b64decode(d["data"]), d["cut"])
    if kind == "run_change":
        return RunChange(d["id"], **d["v"])
    if kind == "step_change":
        return StepChange(d["id"], **d["v"])
    if kind == "run":
        return NewRun(Run(**d["v"]))
    if kind == "step":
        return NewStep(Step(**d["v"]))
    if kind == "artifact":
        return NewArtifact(Artifact(**d["v"]))
    raise ValueError(f"unknown spooled write {kind!r}")


def encoded_size(raw: int) -> int:
    """About how many spool bytes `raw` bytes of output take (base64 and JSON: 4/3 and a little)."""
    return raw * 3 // 2


def batch_line(run_id: str, seq: int, writes: Sequence[Write]) -> bytes:
    import json  # here: a run that never spools never imports it

    return (json.dumps({"run": run_id, "seq": seq, "w": [encode_write(w) for w in writes]},
                       ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def read_batches(path: Path) -> Iterator[tuple[int, list[Write]]]:
    """(seq, writes) of each whole line of one spool file; a torn last line is skipped."""
    import json

    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # cut short by a crash while it was written: never acknowledged
            try:
                d = json.loads(raw)
                yield int(d["seq"]), [decode_write(w) for w in d["w"]]
            except (ValueError, KeyError, TypeError):
                continue


# -- the writer's side ------------------------------------------------------------------------


class Spool:
    """One run's spool: append batches, read them back, clear once the store took them.

    Holds an exclusive flock on each of its files while open, so no other command replays
    them under the writer's feet. Not thread-safe: the writer thread alone uses it.
    """

    def __init__(self, folders: Sequence[Path], run_id: str, *, max_bytes: int) -> None:
        self.folders = list(folders)
        self.run_id = run_id
        self.max_bytes = max_bytes
        self.used = 0  # bytes appended since the last clear
        self.peak = 0  # the most bytes ever held at once (for reports)
        self._fds: dict[Path, int] = {}
        self._current: Path | None = None

    @property
    def path(self) -> Path | None:
        """The file batches go to now (None until the first append)."""
        return self._current

    def over_bound(self, extra: int) -> bool:
        """Whether `extra` bytes of output would take the spool past its bound (as base64 in JSON)."""
        return self.used + encoded_size(extra) > self.max_bytes

    def append(self, seq: int, writes: Sequence[Write]) -> None:
        """Append one batch durably (written and fsync'd) to the first folder that takes it.

        Raises:
            OSError: no folder could take it (each full, read-only or missing).
        """
        line = batch_line(self.run_id, seq, writes)
        error: OSError | None = None
        candidates = ([self._current] if self._current else []) + [
            f / f"{self.run_id}{SUFFIX}" for f in self.folders]
        for path in dict.fromkeys(candidates):
            try:
                fd = self._fds.get(path)
                if fd is None:
                    fd = _open_locked(path)
                    self._fds[path] = fd
                end = os.lseek(fd, 0, os.SEEK_END)
                try:
                    _write_all(fd, line)
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, end)  # no torn batch left behind: the next folder gets it whole
                    raise
            except OSError as exc:
                error = exc
                continue
            self._current = path
            self.used += len(line)
            self.peak = max(self.peak, self.used)
            return
        assert error is not None
        raise error

    def batches(self) -> list[tuple[int, list[Write]]]:
        """Every batch spooled so far, by seq."""
        found: list[tuple[int, list[Write]]] = []
        for path in self._fds:
            found.extend(read_batches(path))
        return sorted(found, key=lambda b: b[0])

    def clear(self) -> None:
        """The store took every batch: empty the files (kept, and locked, until close)."""
        for fd in self._fds.values():
            os.ftruncate(fd, 0)
        self.used = 0
        self._current = None

    def close(self) -> list[Path]:
        """Unlock; remove empty files. Returns the files still holding batches."""
        left = []
        for path, fd in self._fds.items():
            try:
                if os.fstat(fd).st_size == 0:
                    path.unlink(missing_ok=True)
                else:
                    left.append(path)
            finally:
                os.close(fd)
        self._fds.clear()
        return left


def _open_locked(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# -- replay -----------------------------------------------------------------------------------


@record
class Replayed:
    """What one replay did."""

    runs: int = 0  # runs whose whole spool reached the store (files removed)
    batches: int = 0  # batches applied now
    skipped: int = 0  # batches the store already had (an earlier replay applied them)
    lines: int = 0  # output lines applied now
    waiting: list[str] = field(default_factory=list)  # run ids still spooled (busy, recording, failed)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines_text(self) -> list[str]:
        out = [f"replayed {self.batches} batches ({self.lines} output lines) of {self.runs} runs"
               f"{f'; {self.skipped} already stored' if self.skipped else ''}"]
        if self.waiting:
            out.append(f"{len(self.waiting)} runs still spooled: {', '.join(r[:8] for r in self.waiting)}")
        out.extend(self.problems)
        return out


def spooled_runs(folders: Sequence[str | os.PathLike[str]]) -> dict[str, list[Path]]:
    """Run id -> its spool files, over `folders`. One failed scandir per missing folder."""
    found: dict[str, list[Path]] = {}
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(SUFFIX):
                from pathlib import Path  # only once a spool is there: history commands check every time

                found.setdefault(entry.name[: -len(SUFFIX)], []).append(Path(entry.path))
    return found


def replay(store: Store, folders: Sequence[str | os.PathLike[str]], *, wait: float = REPLAY_WAIT,
           stop: Callable[[], bool] = lambda: False) -> Replayed:
    """Write every spooled batch whose run is not recording any more to `store`, once each.

    A run still recording (its writer holds the lock) is left to its writer. A run whose
    batches the store refuses now (busy, full) stays spooled, in `waiting`, and so do the
    runs not reached once `stop()` says so (checked between batches). Never raises because
    of the store.
    """
    done = Replayed()
    for run_id, paths in sorted(spooled_runs(folders).items()):
        fds: list[tuple[Path, int]] = []
        if stop():
            done.waiting.append(run_id)
            continue
        try:
            for path in paths:
                fd = _lock_existing(path)
                if fd is None:
                    break
                fds.append((path, fd))
            if len(fds) != len(paths):
                done.waiting.append(run_id)
                continue
            batches = sorted((b for path, _fd in fds for b in read_batches(path)), key=lambda b: b[0])
            try:
                for seq, writes in batches:
                    if stop():
                        raise StepflowError("stopped: the replaying command ends")
                    if store.apply_spooled(run_id, seq, writes, wait=wait):
                        done.batches += 1
                        done.lines += sum(w.line_count for w in writes if isinstance(w, LogBlock))
                    else:
                        done.skipped += 1
            except StepflowError as exc:
                done.waiting.append(run_id)
                done.problems.append(f"run {run_id[:8]} stays spooled: {exc}")
                continue
            for path, _fd in fds:
                path.unlink(missing_ok=True)
            done.runs += 1
        finally:
            for _path, fd in fds:
                os.close(fd)
    return done


def _lock_existing(path: Path) -> int | None:
    """An fd holding the file's exclusive lock, or None: it is gone or its writer still holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # removed (and maybe made again) meanwhile
            raise OSError("replaced")
    except OSError:
        os.close(fd)
        return None
    return fd


def replay_waiting(
    store: Store, folders: Sequence[str | os.PathLike[str]], *, wait: float = REPLAY_WAIT,
) -> Replayed | None:
    """`replay` when any spool file is waiting; None (after one stat per folder) when none is."""
    if not spooled_runs(folders):
        return None
    return replay(store, folders, wait=wait)

"""Other runs' spools, replayed by a run that finds the store writable (issue 13).

Runs recorded during an outage leave their spools behind; the next run whose writer gets a
write through puts them into the store, in a thread of its own with a connection of its own,
so neither its command nor its own writer waits for them. A run that finds no spool pays a
few directory scans, in the writer's thread, and imports nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from stepflow.errors import StepflowError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from stepflow.config import Settings
    from stepflow.store.base import Store

SUFFIX = ".spool"  # stepflow.store.spool.SUFFIX, not imported: most runs never need that module


def others_waiting(settings: Settings, run_id: str) -> bool:
    """Whether a spool folder of this store may hold another run's spool: a few scandirs, and
    the store's own folders (a hash) worked out only when some folder holds a spool."""
    own = run_id + SUFFIX
    primary = os.path.join(settings.storage_dir, "spool")
    parents = [f"/tmp/stepflow-spool-{os.getuid()}"]  # one folder per store beneath each
    if settings.runtime_dir is not None:
        parents.insert(0, os.path.join(settings.runtime_dir, "stepflow-spool"))
    if settings.url is None:
        if _holds_spool(primary, own):
            return True
    else:
        parents.insert(0, primary)  # a store named by URL spools into <storage>/spool/KEY
    for parent in parents:
        try:
            with os.scandir(parent) as entries:
                folders = [e.path for e in entries if e.is_dir()]
        except OSError:
            continue
        if any(_holds_spool(folder, own) for folder in folders):
            return any(_holds_spool(f, own) for f in settings.spool_dirs)
    return False


def _holds_spool(folder: str, own: str) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(e.name.endswith(SUFFIX) and e.name != own for e in entries)
    except OSError:
        return False


class Backlog:
    """Replay other runs' spools in the background; `start` is safe to call from any thread."""

    def __init__(self, settings: Settings, run_id: str, open_store: Callable[[], Store]) -> None:
        self.settings = settings
        self.run_id = run_id
        self._open_store = open_store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin replaying when some other run's spool is waiting; else do nothing."""
        if self._thread is None and others_waiting(self.settings, self.run_id):
            self._thread = threading.Thread(target=self._replay, name="stepflow-replay", daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> None:
        """Give the replay at most `timeout` more seconds, then stop it after its batch: the
        rest waits for the next command. Applied batches are recorded, so stopping half-way
        loses nothing and stores nothing twice."""
        if self._thread is not None:
            self._thread.join(timeout)
        self._stop.set()

    def _replay(self) -> None:
        from stepflow.store.spool import replay

        try:
            store = self._open_store()
        except (StepflowError, OSError):
            return  # away again: the spools wait for the next command
        try:
            replay(store, self.settings.spool_folders, stop=self._stop.is_set)
        except (StepflowError, OSError):
            pass
        finally:
            try:
                store.close()
            except (StepflowError, OSError):
                pass

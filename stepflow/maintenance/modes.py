"""Give a store the modes stepflow gives new ones: folders 0700, database files 0600.

A StepFlow Monitor store comes with the modes of its server's umask (often 0755 / 0644): its
runs' environment may hold secrets, so once migrated it is as private as a new store.
"""

from __future__ import annotations

import contextlib
import os

from stepflow.config import Settings

FOLDER_MODE = 0o700
FILE_MODE = 0o600
DB_SUFFIXES = ("", "-wal", "-shm", "-journal")


def private(settings: Settings) -> list[str]:
    """chmod the storage and database folders and the database files; the paths changed.

    Best effort: a file owned by someone else (an old server's) is left as it is.
    """
    db = settings.database
    changed = []
    targets = [(settings.storage, FOLDER_MODE), (db.parent, FOLDER_MODE)]
    targets += [(db.with_name(db.name + suffix), FILE_MODE) for suffix in DB_SUFFIXES]
    for path, mode in targets:
        with contextlib.suppress(OSError):
            if (os.stat(path).st_mode & 0o777) != mode:
                os.chmod(path, mode)
                changed.append(str(path))
    return changed

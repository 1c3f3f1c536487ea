"""Files as upkeep needs them: which filesystem, fsync, free space, sizes. No SQLite here."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from stepflow.fmt import size as human_size  # noqa: F401  (one size formatter: stepflow.fmt)

# WAL needs shared memory that every process sees: one host, one kernel. These filesystems are
# shared between hosts (or emulate locks and mmap across a VM boundary), so SQLite says no.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs", "lustre",
    "gpfs", "ocfs2", "gfs2", "davfs", "fuse.sshfs", "sshfs", "fuse.glusterfs", "fuse.cephfs",
    "fuse.s3fs", "fuse.rclone", "fuse.davfs2", "fuse.gcsfuse", "fuse.juicefs",
})


def _unescape(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as octal."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _resolved(path: Path) -> str:
    """The absolute path with symbolic links resolved as far as it exists."""
    full = Path(os.path.abspath(path))
    existing = full
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return os.path.normpath(os.path.join(os.path.realpath(existing), os.path.relpath(full, existing)))


def filesystem_type(path: Path, *, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem holding `path` (`ext4`, `nfs4`...), or None when unknown.

    Reads /proc/self/mountinfo unless `mountinfo` (its text) is given; the longest mount point
    that contains the path wins. A path that does not exist yet is looked up by its parent.
    """
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    where = _resolved(Path(path))
    best, kind = "", None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        point = _unescape(fields[4])
        inside = where == point or where.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, tail[0]
    return kind


def network_filesystem(path: Path, *, mountinfo: str | None = None) -> str | None:
    """The filesystem type when `path` is on a network (or host-shared) filesystem, else None."""
    kind = filesystem_type(path, mountinfo=mountinfo)
    if kind is None:
        return None
    base = kind.split(".", 1)[0] if not kind.startswith("fuse.") else kind
    return kind if kind in NETWORK_FILESYSTEMS or base in NETWORK_FILESYSTEMS else None


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk (VACUUM INTO and copies do not)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder, so a file created or renamed in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged user may still write on the filesystem holding `path`."""
    target = Path(path)
    while not target.exists() and target != target.parent:
        target = target.parent
    return shutil.disk_usage(target).free


def file_size(path: Path) -> int:
    """Size of a file, 0 when it does not exist."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def tree_size(path: Path) -> int:
    """Bytes in the files under a folder (symbolic links not followed); 0 when it is missing."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 run`, `3 runs`."""
    return f"{n} {word if n == 1 else (many or word + 's')}"

"""A real PostgreSQL server for the tests: initdb in a temporary folder, a Unix socket only.

As root (CI runs as root) the server runs as an unprivileged user, since PostgreSQL refuses
to run as root. Nothing listens on TCP: the socket lives in the server's own folder.
Skipped, saying why, where no PostgreSQL binaries are installed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

SEARCH = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")


def binaries() -> Path | None:
    """The folder holding initdb and postgres, or None."""
    for folder in SEARCH:
        if Path(folder, "postgres").exists() and Path(folder, "initdb").exists():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _server_user() -> str | None:
    """Who runs the server: ourselves, or as root an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root with neither a 'postgres' nor a 'nobody' user")


def _as(user: str | None, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


class PgServer:
    def __init__(self, folder: Path, bin_dir: Path, user: str | None) -> None:
        self.folder, self.bin_dir, self.user = folder, bin_dir, user
        self.data = folder / "data"
        self.socket_dir = folder / "sock"
        self.port = 5432
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def superuser(self) -> str:
        return self.user or pwd.getpwuid(os.geteuid()).pw_name

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@/{database}?host={self.socket_dir}&port={self.port}"

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.folder, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            # the user must be able to reach its folder through the temporary folders above it
            parent = self.folder.parent
            while parent != parent.parent and not (parent.stat().st_mode & 0o001):
                os.chmod(parent, parent.stat().st_mode | 0o711)
                parent = parent.parent
        done = _as(self.user, [str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust",
                               "-U", self.superuser, "-E", "UTF8", "--no-sync"])
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-500:]}")

    def start(self) -> None:
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data), "-k", str(self.socket_dir),
                "-c", "listen_addresses=", "-p", str(self.port), "-c", "fsync=off",
                "-c", "max_connections=300", "-c", "shared_buffers=64MB"]
        if self.user is not None:
            argv = ["setpriv", f"--reuid={self.user}", f"--regid={pwd.getpwnam(self.user).pw_gid}",
                    "--clear-groups", *argv]
        log = open(self.folder / "server.log", "ab")  # noqa: SIM115 - the server writes it for its life
        self.process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.folder / 'server.log').read_text()[-800:]}")
            ready = _as(None, [str(self.bin_dir / "pg_isready"), "-h", str(self.socket_dir), "-p", str(self.port)])
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres did not become ready in 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: smart shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = _as(None, ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
                          "-p", str(self.port), "-U", self.superuser, "-d", database, "-c", sql])
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode(errors="replace"))
        return done.stdout.decode()

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, walwriter...)."""
        assert self.process is not None
        root, children = self.process.pid, []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path("/proc", entry, "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == root:
                    children.append(int(entry))
        return [root, *children]


@contextlib.contextmanager
def running_server(folder: Path) -> Iterator[PgServer]:
    """A started server in `folder`, stopped afterwards. Raises RuntimeError if it cannot start."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb, postgres) on this machine")
    server = PgServer(folder, bin_dir, _server_user())
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def temporary_server(prefix: str) -> Iterator[PgServer]:
    """`running_server` in a new temporary folder, removed afterwards. The folder's name is
    short: the socket's path must fit in 107 bytes. Raises RuntimeError if it cannot start."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with running_server(folder / "pg") as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)

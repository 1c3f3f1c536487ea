"""Settings from flag > environment > default, validated once; nothing else reads os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping

from stepflow.errors import SettingsError
from stepflow.record import field, record

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)

if TYPE_CHECKING:  # imported where a URL is parsed: every command reads settings, few need a URL
    from pathlib import Path  # a run's start-up never imports pathlib (~5 ms with re): paths are str here

    from stepflow.store.url import DatabaseURL

STORAGE_PATH = "STEPFLOW_STORAGE_PATH"
DATABASE_URL = "STEPFLOW_DATABASE_URL"
LOG_LEVEL = "STEPFLOW_LOG_LEVEL"
WAL_AUTOCHECKPOINT = "STEPFLOW_WAL_AUTOCHECKPOINT"
CACHE_SIZE = "STEPFLOW_CACHE_SIZE"
BUFFER_SIZE = "STEPFLOW_BUFFER_SIZE"
BUSY_TIMEOUT = "STEPFLOW_BUSY_TIMEOUT"
MMAP_SIZE = "STEPFLOW_MMAP_SIZE"
MAX_LINE = "STEPFLOW_MAX_LINE"
ARTIFACT_MAX_SIZE = "STEPFLOW_ARTIFACT_MAX_SIZE"
RAISE_ERRORS = "STEPFLOW_RAISE_ERRORS"
MASK_ENV = "STEPFLOW_MASK_ENV"
ENV_ALLOW = "STEPFLOW_ENV_ALLOW"
API_KEY = "STEPFLOW_API_KEY"
HOST = "STEPFLOW_HOST"  # the host name a run records (default: the node name); a fleet's containers set it
SPOOL_MAX = "STEPFLOW_SPOOL_MAX"
ARTIFACT_RUN_MAX = "STEPFLOW_ARTIFACT_RUN_MAX"
ARTIFACT_MIN_FREE = "STEPFLOW_ARTIFACT_MIN_FREE"
WRITER_BUSY_MS = 5000  # a run's writer waits this long for the write lock per attempt, then spools

DEFAULT_MASK_ENV = (  # not *SESSION*: XDG_SESSION_TYPE=tty would hide every "tty"
    "*TOKEN*", "*SECRET*", "*PASSWORD*", "*PASSWD*", "*_KEY", "*_KEY_*", "*APIKEY*",
    "*CREDENTIAL*", "*PRIVATE*", "*_AUTH", "*SESSION_ID*", "*SESSION_KEY*", "*COOKIE*",
)

LOG_LEVELS = ("debug", "info", "warning", "error")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@record(frozen=True)
class Settings:
    """Everything configurable, resolved. Build it with `load_settings`.

    Paths are held as absolute str (`storage_dir`, `runtime_dir`): what a run needs before its
    command starts is str and os.path; the Path properties are for the other commands.
    """

    storage_dir: str
    log_level: str = "warning"
    wal_autocheckpoint: int = 1000  # pages
    cache_size: int = 10000  # pages
    buffer_size: int = 256 * 1024  # bytes of output held before a write, at most
    busy_timeout_ms: int = 30000
    mmap_size: int = 256 * 1024 * 1024
    max_line: int = 1024 * 1024  # longer lines are cut when stored (never when passed through)
    artifact_max_size: int = 1024 * 1024 * 1024
    mask_env: tuple[str, ...] = DEFAULT_MASK_ENV  # names whose values are hidden in output
    env_allow: tuple[str, ...] = ()  # names whose values are stored with a run (others: name only)
    url: DatabaseURL | None = None  # --database / STEPFLOW_DATABASE_URL; None: the file in `storage`
    api_key: str | None = field(default=None, repr=False)  # `stepflow serve`'s key; never shown
    host: str | None = None  # STEPFLOW_HOST; None: os.uname().nodename
    artifact_run_max: int = 10 * 1024**3  # bytes of artifacts one run copies; beyond: by path
    artifact_min_free: int = 256 * 1024**2  # free bytes left on the store's disk; beyond: by path
    spool_max: int = 256 * 1024 * 1024  # bytes one run may spool; output beyond is lost (counted)
    runtime_dir: str | None = None  # $XDG_RUNTIME_DIR: the spool's first fallback

    @property
    def storage(self) -> Path:
        from pathlib import Path

        return Path(self.storage_dir)

    @property
    def spool_folders(self) -> list[Path]:
        """Where runs spool what the store did not take: <storage>/spool (<storage>/spool/KEY
        for a store given by URL), then the fallbacks (computed when used: a run that never
        spools never pays for the hash)."""
        from pathlib import Path

        return [Path(folder) for folder in self.spool_dirs]

    @property
    def spool_dirs(self) -> list[str]:
        """spool_folders as text: what a history command looks in before it needs pathlib.
        One store's spools are never in another's folder: a command opening the host's SQLite
        file must not replay a PostgreSQL run into it."""
        primary = os.path.join(self.storage_dir, "spool")
        if self.url is not None:
            primary = os.path.join(primary, store_key(self.storage_dir, self.url))
        return [primary, *spool_fallback(self.runtime_dir, self.storage_dir, self.url)]

    @property
    def database_url(self) -> DatabaseURL:
        """Where runs are kept, as stepflow.store.open_store takes it."""
        if self.url is not None:
            return self.url
        from stepflow.store.url import DatabaseURL

        file = self.database_file
        return DatabaseURL("sqlite", file, file)

    @property
    def database_file(self) -> str:
        """The SQLite file: the URL's, else <storage>/database/stepflow.db."""
        url = self.url
        if url is not None and url.file is not None:
            return url.file
        return os.path.join(self.storage_dir, "database", "stepflow.db")

    @property
    def database(self) -> Path:
        """database_file as a Path (SQLite upkeep uses it)."""
        from pathlib import Path

        return Path(self.database_file)

    @property
    def artifacts_dir(self) -> str:
        return os.path.join(self.storage_dir, "artifacts")

    @property
    def artifacts(self) -> Path:
        return self.storage / "artifacts"


def default_storage(env: Mapping[str, str]) -> str:
    """The XDG data folder for stepflow: $XDG_DATA_HOME/stepflow or ~/.local/share/stepflow."""
    base = env.get("XDG_DATA_HOME") or ""
    if not base or not os.path.isabs(base):  # the XDG spec says relative values are ignored
        base = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "stepflow")


INT_MAX = 2**31 - 1  # SQLite's pragmas and busy timeout take a C int
SIZE_MAX = 2**62


def parse_size(name: str, text: str, *, minimum: int = 0, maximum: int = SIZE_MAX) -> int:
    """Read `4096`, `64K`, `1M` or `2G` (binary units) as a byte count, or raise naming `name`."""
    raw = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = raw[-1:] if raw[-1:] in _UNITS and not raw[-1:].isdigit() else ""
    digits = raw[: len(raw) - len(unit)]
    value = int(digits) * _UNITS[unit] if digits.isascii() and digits.isdigit() else -1
    if value < minimum:
        raise SettingsError(f"{name}={text!r} is not a size of at least {minimum} bytes (e.g. 65536, 64K, 1M)")
    if value > maximum:
        raise SettingsError(f"{name}={text!r} is more than {maximum} bytes")
    return value


def parse_int(name: str, text: str, *, minimum: int = 0, maximum: int = INT_MAX) -> int:
    """Read a whole number from `minimum` to `maximum`, or raise naming `name`."""
    stripped = text.strip()
    value = int(stripped) if stripped.isascii() and stripped.lstrip("-").isdigit() else minimum - 1
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={text!r} is not a whole number from {minimum} to {maximum}")
    return value


def load_settings(
    env: Mapping[str, str] | None = None, *, storage: str | os.PathLike[str] | None = None,
    database: str | None = None,
) -> Settings:
    """Resolve settings: flags (`storage`: --storage, `database`: --database) win over the
    environment, then defaults.

    Raises:
        SettingsError: a STEPFLOW_* variable holds a value that cannot be used; the message names it.
    """
    env = os.environ if env is None else env
    if storage is not None and str(storage) == "":
        raise SettingsError("--storage is empty; give a folder path")
    path = storage if storage is not None else env.get(STORAGE_PATH) or None
    root = os.path.expanduser(os.fspath(path)) if path is not None else default_storage(env)
    level = env.get(LOG_LEVEL, "warning").strip().lower() or "warning"
    if level not in LOG_LEVELS:
        raise SettingsError(f"{LOG_LEVEL}={env[LOG_LEVEL]!r} is not one of {', '.join(LOG_LEVELS)}")

    def number(name: str, default: int, minimum: int) -> int:
        return parse_int(name, env[name], minimum=minimum) if env.get(name) else default

    def size(name: str, default: int, minimum: int) -> int:
        return parse_size(name, env[name], minimum=minimum) if env.get(name) else default

    url = database_url(env, database)
    return Settings(
        url=url,
        storage_dir=_absolute(root),
        log_level=level,
        wal_autocheckpoint=number(WAL_AUTOCHECKPOINT, 1000, 0),
        cache_size=number(CACHE_SIZE, 10000, 1),
        buffer_size=size(BUFFER_SIZE, 256 * 1024, 4096),
        busy_timeout_ms=number(BUSY_TIMEOUT, 30000, 0),
        mmap_size=size(MMAP_SIZE, 256 * 1024 * 1024, 0),
        max_line=size(MAX_LINE, 1024 * 1024, 256),
        artifact_max_size=size(ARTIFACT_MAX_SIZE, 1024 * 1024 * 1024, 0),
        mask_env=_patterns(env[MASK_ENV]) if MASK_ENV in env else DEFAULT_MASK_ENV,
        env_allow=_patterns(env.get(ENV_ALLOW, "")),
        api_key=env.get(API_KEY) or None,
        host=env.get(HOST, "").strip() or None,
        spool_max=size(SPOOL_MAX, 256 * 1024 * 1024, 0),
        artifact_run_max=size(ARTIFACT_RUN_MAX, 10 * 1024**3, 0),
        artifact_min_free=size(ARTIFACT_MIN_FREE, 256 * 1024**2, 0),
        runtime_dir=runtime if (runtime := env.get("XDG_RUNTIME_DIR") or "") and os.path.isabs(runtime) else None,
    )


def this_host(env: Mapping[str, str] | None = None) -> str:
    """The host name runs here record: STEPFLOW_HOST, else the node name (as `Settings.host`)."""
    return (os.environ if env is None else env).get(HOST, "").strip() or os.uname().nodename


def _absolute(path: str) -> str:
    """`path` joined to the working folder, `a//b`, `./` and a trailing slash tidied."""
    return os.path.normpath(os.path.join(os.getcwd(), path))


def store_key(storage: str, url: DatabaseURL | None) -> str:
    """A folder name for one store: a hash of its URL, else of its storage folder."""
    try:
        from _sha1 import sha1  # hashlib's own fallback: the same digest, without loading OpenSSL (~5 ms)
    except ImportError:
        from hashlib import sha1

    place = url.text if url is not None else storage
    return sha1(place.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def spool_fallback(runtime: str | None, storage: str, url: DatabaseURL | None) -> tuple[str, ...]:
    """$XDG_RUNTIME_DIR/stepflow-spool/KEY, then /tmp/stepflow-spool-UID/KEY: other disks than
    the store's, one folder per store (KEY: store_key) so replay never mixes stores."""
    key = store_key(storage, url)
    tmp = os.path.join("/tmp", f"stepflow-spool-{os.getuid()}", key)
    if runtime is not None:
        return (os.path.join(runtime, "stepflow-spool", key), tmp)
    return (tmp,)


def database_url(env: Mapping[str, str], flag: str | None = None) -> DatabaseURL | None:
    """The --database flag, else STEPFLOW_DATABASE_URL, parsed; None when neither is given.

    Raises:
        SettingsError: not a URL a known backend takes; the message names the setting and
            never shows the password.
    """
    name, text = ("--database", flag) if flag is not None else (DATABASE_URL, env.get(DATABASE_URL))
    if text is None or (flag is None and not text.strip()):
        return None
    return checked_url(f"{name}=", text)


def checked_url(label: str, text: str) -> DatabaseURL:
    """`text` as open_store takes it, a relative file path made absolute; `label` says in errors
    where it came from (`STEPFLOW_DATABASE_URL=`, `--to `).

    Raises:
        SettingsError: not a URL a known backend takes (the message never shows the password).
    """
    from stepflow.store import BACKENDS
    from stepflow.store.url import DatabaseURL, mask_password, parse_url

    try:
        url = parse_url(text)
    except ValueError as exc:
        raise SettingsError(f"{label}{mask_password(text)!r} {exc}") from None
    if url.scheme not in BACKENDS:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        raise SettingsError(f"{label}{mask_password(text)!r}: no backend for {url.scheme}:// (known: {known},"
                            " or a file path)")
    if url.file is not None:
        url = DatabaseURL(url.scheme, url.text, _absolute(url.file))
    return url


def color_wanted(no_color_flag: bool = False, env: Mapping[str, str] | None = None) -> bool:
    """Colours unless --no-color or NO_COLOR (https://no-color.org: set at all, any value)."""
    env = os.environ if env is None else env
    return not no_color_flag and "NO_COLOR" not in env


def dumb_terminal(env: Mapping[str, str] | None = None) -> bool:
    """TERM=dumb: a terminal that cannot redraw in place (Emacs shells, some CI consoles)."""
    env = os.environ if env is None else env
    return env.get("TERM") == "dumb"


def raise_errors(env: Mapping[str, str] | None = None) -> bool:
    """STEPFLOW_RAISE_ERRORS: show tracebacks instead of one-line errors (for bug reports).

    Read on its own, not through Settings: it must work when the settings themselves fail.
    """
    env = os.environ if env is None else env
    return env.get(RAISE_ERRORS, "").strip().lower() not in ("", "0", "false", "no", "off")


def _patterns(text: str) -> tuple[str, ...]:
    """A comma-separated list of name patterns (fnmatch, case-insensitive); empty means none."""
    return tuple(p.strip() for p in text.split(",") if p.strip())

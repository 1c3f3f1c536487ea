"""Database URLs: which backend, where, and how to show one without its password. Pure.

A plain path or `sqlite:///PATH` (`sqlite:////abs` or `sqlite:///rel`, as SQLAlchemy spells
them) is SQLite; `postgresql://user:pw@host/db` names a PostgreSQL database (issue 13).
"""

from __future__ import annotations

import os

from stepflow.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from pathlib import Path

# A URL scheme (RFC 3986): a letter, then letters, digits, + . - ; checked without `re`, which
# a run's start-up does not import (issue 17).
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


@record(frozen=True)
class DatabaseURL:
    """A parsed database URL. `text` is as given; `path` is set for file-backed backends."""

    scheme: str  # "sqlite", "postgresql", ...: the backend registry's key
    text: str
    file: str | None = None  # the database file, for file-backed backends

    @property
    def path(self) -> Path | None:
        from pathlib import Path

        return None if self.file is None else Path(self.file)

    def __str__(self) -> str:
        return mask_password(self.text)


def _scheme(text: str) -> str | None:
    """The scheme of `text` if it starts with `scheme://`."""
    head, sep, _ = text.partition("://")
    if sep and head and head[0].isascii() and head[0].isalpha() and all(c in _SCHEME_CHARS for c in head):
        return head
    return None


def parse_url(text: str) -> DatabaseURL:
    """Read a database URL or a plain file path.

    Raises:
        ValueError: empty, or a URL whose form this scheme does not take (the message says why).
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("is empty; give a file path or a URL such as sqlite:///PATH")
    given = _scheme(stripped)
    if given is None:
        return DatabaseURL("sqlite", stripped, os.path.expanduser(stripped))
    scheme = given.lower()
    if scheme == "sqlite":
        rest = stripped[len(given) + 3:]
        if not rest.startswith("/") or rest == "/":
            raise ValueError("is not sqlite:///PATH (three slashes, then the file)")
        path = rest[1:]  # sqlite:///rel/x.db is relative; sqlite:////abs/x.db absolute
        return DatabaseURL("sqlite", stripped, os.path.expanduser(path))
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        return DatabaseURL("postgresql", stripped)
    return DatabaseURL(scheme, stripped)


def _query_password() -> re.Pattern[str]:
    import re

    return re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)  # libpq takes ?password=... too


def url_secrets(text: str) -> list[str]:
    """The passwords a database URL carries (user:PASSWORD@ and ?password=), to mask wherever they show."""
    from urllib.parse import unquote, urlsplit

    found = [m.group(0).split("=", 1)[1] for m in _query_password().finditer(text)]
    if "://" in text and "@" in text:
        try:
            password = urlsplit(text).password
        except ValueError:
            password = None
        if password:
            found.append(password)
    found += [unquote(p) for p in found if "%" in p]  # as typed, and as libpq reads it
    return [p for p in dict.fromkeys(found) if p and p != "***"]


def mask_password(text: str) -> str:
    """`text` with the password of a URL replaced by `***`; anything else as it is.

    Errs on the side of hiding: the user part runs to the last `@` before any `?` or `#`, so
    a password holding a raw `@` or `/` (invalid, but typed) is hidden whole.
    """
    head, sep, rest = text.partition("://")
    if not sep:
        return text
    if "password=" in rest.lower():
        rest = _query_password().sub(r"\1***", rest)
        text = f"{head}://{rest}"
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, cut)
    if at < 0:
        return text
    user, colon, _password = rest[:at].partition(":")
    if not colon:
        return text
    return f"{head}://{user}:***{rest[at:]}"

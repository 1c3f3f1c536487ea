"""Pure pieces of the PostgreSQL backend's SQL: value encoding, glob to regex, the find_runs clause.

Kept apart from the store so they can be tested without a server, and so the store module
stays about talking to one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from stepflow.record import fields
from stepflow.store.base import JSON_FIELDS, OPEN_STATUSES, Artifact, Run, RunQuery, Step, decode_json

JSON_COLUMNS = JSON_FIELDS
TABLES: dict[type, str] = {Run: "executions", Step: "steps", Artifact: "artifacts"}
OPEN_SQL = "(" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")"  # ('running', 'pending')


def columns(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


INSERT_SQL = {
    cls: f"INSERT INTO {table} ({', '.join(columns(cls))}) VALUES ({', '.join(['%s'] * len(columns(cls)))})"
    " ON CONFLICT (id) DO NOTHING"
    for cls, table in TABLES.items()
}
SELECT_SQL = {cls: f"SELECT {', '.join(columns(cls))} FROM {table}" for cls, table in TABLES.items()}


def text(value: str) -> str:
    """A string PostgreSQL text can hold: stray surrogates become U+FFFD, NUL (which text
    cannot hold, and which would fail the whole batch) becomes U+FFFD too."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def encode(column: str, value: Any) -> Any:
    """A Python value as stored: JSON columns hold JSON text, as in SQLite; text made storable."""
    if column in JSON_COLUMNS and value is not None and not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return text(value)
    return value


decode = decode_json  # the protocol's rule: a JSON field's text decoded, bad JSON kept as text


NEVER = "^(?!)"  # a regex nothing matches


def glob_regex(glob: str) -> str:
    """SQLite GLOB's pattern as an anchored POSIX regex: `*`, `?`, `[...]` (`[^...]` negates),
    case-sensitive. A pattern with an unclosed `[` matches nothing, as in SQLite."""
    out = ["^"]
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i + 1
            negate = j < n and glob[j] == "^"
            if negate:
                j += 1
            if j < n and glob[j] == "]":  # a ] first in the set is one of its characters
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                return NEVER  # SQLite: a pattern with an unclosed [ matches nothing
            else:
                body = glob[i + 1 + negate:j]
                out.append("[" + ("^" if negate else "") + _set(body) + "]")
                i = j
        else:
            out.append(c if c.isalnum() else "\\" + c)
        i += 1
    out.append("$")
    return "".join(out)


def _set(body: str) -> str:
    """The inside of a bracket set with POSIX bracket specials made plain (ranges a-z kept)."""
    out = []
    for k, c in enumerate(body):
        if c == "]" and k == 0:
            out.append("]")
        elif c == "\\":
            out.append("\\\\")
        elif c == "[":
            out.append("\\[")
        elif c == "^":
            out.append("\\^")
        else:
            out.append(c)
    return "".join(out)


def runs_clause(query: RunQuery) -> tuple[str, list[Any]]:
    """The WHERE/ORDER BY/LIMIT of `find_runs`, with its parameters: SQLite's semantics."""
    where: list[str] = []
    params: list[Any] = []
    if query.status:
        where.append("status = %s")
        params.append(text(query.status))
    if query.name_glob:
        if any(c in query.name_glob for c in "*?["):
            where.append("name ~ %s")
            params.append(text(glob_regex(query.name_glob)))
        else:
            where.append("name = %s")
            params.append(text(query.name_glob))
    if query.tag:
        where.append("stepflow_has_tag(tags, %s)")
        params.append(text(query.tag))
    if query.since_ts is not None:
        where.append("created_ts >= %s")
        params.append(query.since_ts)
    if query.host:
        where.append("host = %s")
        params.append(text(query.host))
    sql = ("WHERE " + " AND ".join(where)) if where else ""
    sql += " ORDER BY created_ts DESC NULLS LAST, seq DESC"
    if query.limit is not None:
        sql += " LIMIT %s"
        params.append(query.limit)
    if query.offset:
        sql += " OFFSET %s"
        params.append(query.offset)
    return sql, params


def _moment(value: str | None) -> datetime | None:
    """A stored time, naive read as UTC (as SQLite's julianday does), or None if not a time."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def moment_ts(value: str | None) -> float | None:
    """A stored time as Unix time, naive read as UTC (SQLite's julianday), or None."""
    moment = _moment(value)
    return None if moment is None else moment.timestamp()


def epoch_of(created_at: str | None) -> float | None:
    """created_ts for a row written without one, as SQLite's trigger computes it (naive: local time)."""
    if not created_at:
        return None
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        return None
    return (moment if moment.tzinfo is not None else moment.astimezone()).timestamp()


def seconds_between(start: str | None, end: str | None) -> float | None:
    """What SQLite's (julianday(end) - julianday(start)) * 86400 gives, or None."""
    a, b = _moment(start), _moment(end)
    return None if a is None or b is None else (b - a).total_seconds()

"""What a store's legacy values mean whoever reads them: the zone of its naive times, and
where its relative artifact paths point.

StepFlow Monitor wrote naive local times (`datetime.now().isoformat()`). `stepflow migrate`
records the zone they were written in (`--legacy-tz`, else the migrating host's) in
`stepflow_meta` under LEGACY_TZ_KEY; opening the store sets it here for the readers. A
store that never recorded one reads naive times in the reader's zone, as before.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # every store open sets the zone; only readers of legacy times need datetime
    from datetime import datetime, tzinfo
    from pathlib import Path

LEGACY_TZ_KEY = "legacy_tz"

_zone: tzinfo | None = None
_storage: str | None = None


def set_storage(folder: str | None) -> None:
    """The storage folder relative legacy artifact paths resolve from (set when a store opens)."""
    global _storage
    _storage = folder


def storage() -> Path | None:
    from pathlib import Path

    return None if _storage is None else Path(_storage)


def host_zone_name() -> str:
    """The IANA name of this host's zone (TZ, else /etc/localtime), or a fixed offset `UTC+HH:MM`."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and _valid(tz):
        return tz
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            name = target.split("zoneinfo/", 1)[1]
            if _valid(name):
                return name
    except OSError:
        pass
    from datetime import datetime

    offset = datetime.now().astimezone().utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _valid(name: str) -> bool:
    try:
        parse_zone(name)
        return True
    except ValueError:
        return False


def parse_zone(name: str) -> tzinfo:
    """An IANA zone name (`Asia/Shanghai`), `UTC`, or a fixed offset `UTC+08:00` / `+08:00`.

    Raises:
        ValueError: not a zone this host knows.
    """
    from datetime import UTC, timedelta, timezone

    text = name.strip()
    fixed = text[3:] if text.upper().startswith("UTC") and len(text) > 3 else text
    if fixed[:1] in "+-" and len(fixed) > 1:
        try:
            hours, _, minutes = fixed[1:].partition(":")
            delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        except ValueError:
            raise ValueError(f"unknown time zone {name!r}") from None
        return timezone(delta if fixed[0] == "+" else -delta, f"UTC{fixed}")
    if text.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not text or text.startswith("/") or ".." in text.split("/"):
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai, or UTC+08:00") from None


def set_legacy_zone(name: str | None) -> None:
    """Read naive times in `name` from now on in this process (None: in the reader's zone)."""
    global _zone
    try:
        _zone = parse_zone(name) if name else None
    except ValueError:
        _zone = None


def legacy_zone() -> tzinfo | None:
    return _zone


def aware(value: datetime) -> datetime:
    """`value` with a zone: naive values are in the store's legacy zone (else the reader's)."""
    if value.tzinfo is not None:
        return value
    return value.replace(tzinfo=_zone) if _zone is not None else value.astimezone()


def epoch(text: str | None, zone: tzinfo | None) -> float | None:
    """Seconds since the epoch of a stored ISO time; naive ones in `zone` (None: local time)."""
    if not text:
        return None
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone) if zone is not None else value.astimezone()
    return value.timestamp()


def resolve_artifact(path: str, storage: Path) -> Path | None:
    """The file an artifact's recorded path names, wherever the reader stands; None if none.

    StepFlow Monitor recorded copies relative to its own working folder, the storage folder's
    parent (`storage/artifacts/<eid>/<aid>_<name>`): such a path is looked for there, then
    inside this storage folder whatever it is named (`<storage>/artifacts/...`). An absolute
    path is taken as it is. Missing files (recorded as `./name`) resolve to nothing.
    """
    if not path:
        return None
    from pathlib import Path

    candidate = Path(path)
    if candidate.is_absolute():
        return candidate if candidate.exists() else None
    found = [storage.parent / candidate]
    parts = candidate.parts
    if len(parts) > 2 and parts[1] == "artifacts":
        found.append(storage / Path(*parts[1:]))
    for option in found:
        if option.is_file():
            return option.absolute()
    return None

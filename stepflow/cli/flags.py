"""Options declared once as tables, and a parser of the common command lines that needs no typer.

Importing typer costs ~50 ms here and click/rich more: more than the rest of a `stepflow run`,
an `ls` or a `--version`. So each command whose speed users feel (`run` in cron jobs, `ls` and
`--version` at a prompt) declares its options in a table of `Flag`s; `parse` reads the common
forms of its command line from that table, and anything it does not fully understand (help,
a typo, a bad value) returns None and goes to typer, whose command is built from the same table
(stepflow/cli/signature.py), so the two can never disagree on a name or a default.

Pure: no I/O.
"""

from __future__ import annotations

from stepflow.record import record

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any


class FilePath(str):
    """A path option's value: text to the fast parser (no pathlib at start-up), a Path to typer,
    which shows it as PATH and completes file names."""

    __slots__ = ()


@record(frozen=True)
class Flag:
    """One option: its parameter name, its spellings, its type, default and help."""

    dest: str
    names: tuple[str, ...]
    kind: type  # str, int, float, FilePath or bool (a flag that takes no value)
    default: Any
    help: str
    repeat: bool = False  # may be given several times; the values become a list
    choices: tuple[str, ...] = ()
    minimum: int | None = None  # for int: the smallest value allowed


# The options every command takes before its name: `stepflow --storage DIR ls`.
GLOBAL_FLAGS: tuple[Flag, ...] = (
    Flag("storage", ("--storage",), FilePath, None,
         "Store folder (default: $STEPFLOW_STORAGE_PATH or the XDG data folder)."),
    Flag("database", ("--database",), str, None,
         "Database: a file path, sqlite:///PATH or postgresql://... (default: $STEPFLOW_DATABASE_URL,"
         " else <storage>/database/stepflow.db)."),
)


def by_name(flags: tuple[Flag, ...]) -> dict[str, Flag]:
    """Each spelling of each flag, to its flag."""
    return {name: flag for flag in flags for name in flag.names}


def defaults(flags: tuple[Flag, ...]) -> dict[str, Any]:
    return {f.dest: ([] if f.repeat else f.default) for f in flags}


def parse(args: list[str], command: str,
          flags: tuple[Flag, ...]) -> tuple[dict[str, Any], dict[str, Any], list[str]] | None:
    """(global values, the command's values, the words after its options) for
    `[GLOBAL OPTIONS] COMMAND [OPTIONS] [--] [WORDS...]`, else None ("not sure": typer decides).

    The command's options end at `--` or at the first word that is not an option, as `run`
    needs (what follows is the wrapped command's own); the caller judges the words left.
    """
    rest = list(args)
    global_values = defaults(GLOBAL_FLAGS)
    known_globals = by_name(GLOBAL_FLAGS)
    while rest and rest[0].startswith("--"):
        if not take(rest, global_values, known_globals):
            return None
    if rest[:1] != [command]:
        return None
    del rest[0]
    values = defaults(flags)
    known = by_name(flags)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        if rest[0] == "--":
            del rest[0]
            break
        if not take(rest, values, known):
            return None
    return global_values, values, rest


def take(rest: list[str], values: dict[str, Any], known: dict[str, Flag]) -> bool:
    """Consume one option (and its value) from the front of `rest` into `values`; False if unsure."""
    word = rest.pop(0)
    name, has_value, inline = word.partition("=")
    flag = known.get(name)
    if flag is None:
        return False
    if flag.kind is bool:
        if has_value:
            return False
        values[flag.dest] = True
        return True
    if not has_value:
        if not rest:
            return False
        inline = rest.pop(0)
    if flag.choices and inline not in flag.choices:
        return False
    try:
        value = flag.kind(inline)
    except ValueError:
        return False
    if flag.minimum is not None and value < flag.minimum:
        return False
    if flag.repeat:
        values[flag.dest].append(value)
    else:
        values[flag.dest] = value
    return True

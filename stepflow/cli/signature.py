"""Typer commands built from a table of flags (stepflow.cli.flags), so the fast parser and typer
read the same names, types, defaults and help."""

from __future__ import annotations

import inspect
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from stepflow.cli.flags import FilePath, Flag


def with_flags(command: Any, flags: tuple[Flag, ...], leading: list[inspect.Parameter]) -> Any:
    """Give `command` (which takes `**values`) the signature typer reads its options from:
    the `leading` parameters (ctx, arguments), then one keyword option per flag."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = list(leading)
    for flag in flags:
        annotation, default = _annotation(flag)
        params.append(inspect.Parameter(flag.dest, keyword, default=default, annotation=annotation))
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def plain_values(values: dict[str, Any]) -> dict[str, Any]:
    """The values typer passes, as the fast parser gives them: choices as text."""
    return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in values.items()}


def context_parameter() -> inspect.Parameter:
    return inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)


def _annotation(flag: Flag) -> tuple[Any, Any]:
    """The typer annotation and default for one flag of the table."""
    kind_of = Path if flag.kind is FilePath else flag.kind
    base: Any = StrEnum(flag.dest.title(), {c: c for c in flag.choices}) if flag.choices else kind_of
    default = base(flag.default) if flag.choices and flag.default is not None else flag.default
    if flag.repeat:
        kind: Any = list[base] | None  # type: ignore[valid-type]
    elif flag.default is None:
        kind = base | None
    else:
        kind = base
    return Annotated[kind, typer.Option(*flag.names, help=flag.help, min=flag.minimum)], default

"""Value classes without the cost of `dataclasses` at start-up.

`stepflow run -- true` is timed by cron users (issue 17). Importing `dataclasses` pulls in
`inspect`, `ast`, `re` and `typing` (~10 ms here), and each `@dataclass` compiles several
generated methods with `exec` (~0.3 ms a class; the run path defines about fifty). `record`
gives the same value semantics from methods shared by every class: an `__init__` that walks
the field list, `__eq__`, `__repr__`, `__hash__` and immutability when `frozen`. Defining a
class costs a few microseconds; building an instance ~1 µs more than a dataclass, which is
nothing on paths that create one per batch or per marker, never per line.

    @record(frozen=True)
    class StepEnded:
        run: RunState
        status: str
        error: str | None = None
        notes: list[str] = field(default_factory=list)

mypy reads `record` as a dataclass (PEP 681, `dataclass_transform`), so constructor calls stay
type-checked. `slots=True` gives `__slots__` (as `dataclass(slots=True)` did); a subclass of
a record is a record with the base's fields first.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs ~4 ms to import: the names below are for mypy only
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_kwargs: object) -> Callable[[T], T]:
        return lambda f: f


_MISSING = object()


class FrozenInstanceError(AttributeError):
    """An attribute of a frozen record was set or deleted."""


class Field:
    """One field: its name, its default (or factory), and whether repr shows it."""

    __slots__ = ("name", "default", "default_factory", "repr")

    def __init__(self, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None,
                 repr: bool = True) -> None:  # noqa: A002  (the dataclasses spelling)
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.repr = repr


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None, repr: bool = True) -> Any:  # noqa: A002
    """A field with a default factory (a fresh list each time) or hidden from repr."""
    return Field(default, default_factory, repr)


@dataclass_transform(field_specifiers=(field, Field))
def record(cls: Any = None, /, *, frozen: bool = False, eq: bool = True, slots: bool = False) -> Any:
    """Make `cls` a value class from its annotations (see the module docstring).

    `slots`: for rows that come by the thousand (a history's lines and steps), where the
    memory of an instance dict counts; it costs a second class creation (~30 µs), which the
    few dozen other classes of a run's start-up do without.
    """
    if cls is None:
        return lambda c: _build(c, frozen, eq, slots)
    return _build(cls, frozen, eq, slots)


def _build(cls: type, frozen: bool, eq: bool, slots: bool) -> type:
    inherited: list[Field] = list(getattr(cls, "__record_fields__", ()))
    annotations = cls.__dict__.get("__annotations__", {})
    own = [name for name, kind in annotations.items() if not str(kind).startswith("ClassVar")]
    fields = [f for f in inherited if f.name not in own]
    for name in own:
        value = cls.__dict__.get(name, _MISSING)
        spec = value if isinstance(value, Field) else Field(default=value)
        spec.name = name
        fields.append(spec)
    methods: dict[str, Any] = {
        "__record_fields__": tuple(fields), "__match_args__": tuple(f.name for f in fields),
        "__record_frozen__": frozen,
    }
    for name, method in (("__init__", _init), ("__repr__", _repr)) + ((("__eq__", _eq),) if eq else ()):
        if name not in cls.__dict__:
            methods[name] = method
    if eq:
        methods["__hash__"] = _hash if frozen else None
    if frozen:
        methods["__setattr__"] = _frozen_setattr
        methods["__delattr__"] = _frozen_delattr
    if slots:
        body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__") and k not in own}
        body.update(methods, __slots__=tuple(own))
        return type(cls)(cls.__name__, cls.__bases__, body)
    for name in own:
        if name in cls.__dict__:
            delattr(cls, name)  # a default lives in its Field: the instance always has its own value
    for name, value in methods.items():
        setattr(cls, name, value)
    return cls


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    specs = type(self).__record_fields__
    if len(args) > len(specs):
        raise TypeError(f"{type(self).__name__}() takes {len(specs)} arguments, {len(args)} given")
    put = object.__setattr__
    for i, spec in enumerate(specs):
        if i < len(args):
            if spec.name in kwargs:
                raise TypeError(f"{type(self).__name__}() got {spec.name!r} twice")
            value = args[i]
        elif spec.name in kwargs:
            value = kwargs.pop(spec.name)
        elif spec.default_factory is not None:
            value = spec.default_factory()
        elif spec.default is not _MISSING:
            value = spec.default
        else:
            raise TypeError(f"{type(self).__name__}() missing argument {spec.name!r}")
        put(self, spec.name, value)
    if len(args) < len(specs) and kwargs:
        raise TypeError(f"{type(self).__name__}() got unexpected arguments {', '.join(map(repr, kwargs))}")
    post = getattr(self, "__post_init__", None)
    if post is not None:
        post()


def _values(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, f.name) for f in type(obj).__record_fields__)


def _repr(self: Any) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in type(self).__record_fields__ if f.repr)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: object) -> bool:
    if type(other) is not type(self):
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def fields(obj_or_cls: Any) -> tuple[Field, ...]:
    """The fields of a record class or instance, in order (each has `.name`)."""
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    return cls.__record_fields__  # type: ignore[attr-defined, no-any-return]


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of `obj` with some fields changed (`__post_init__` runs again)."""
    values = {f.name: getattr(obj, f.name) for f in type(obj).__record_fields__}  # type: ignore[attr-defined]
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {', '.join(sorted(unknown))}")
    values.update(changes)
    return type(obj)(**values)


def asdict(obj: Any) -> dict[str, Any]:
    """The fields as a dict, records inside converted too (lists, tuples and dicts walked)."""
    return {f.name: _plain(getattr(obj, f.name)) for f in type(obj).__record_fields__}


def _plain(value: Any) -> Any:
    if hasattr(type(value), "__record_fields__"):
        return asdict(value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

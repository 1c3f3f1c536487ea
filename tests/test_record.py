"""stepflow.record: the value classes that replaced dataclasses on the start-up path (issue 17)."""

from __future__ import annotations

import pytest

from stepflow.record import FrozenInstanceError, asdict, field, fields, record, replace


@record(frozen=True)
class Point:
    x: int
    tags: tuple[str, ...] = ()
    label: str = "p"


@record
class Bag:
    items: list[int] = field(default_factory=list)
    secret: str = field(default="", repr=False)


@record(slots=True)
class Row:
    id: str
    count: int = 0


@record(frozen=True)
class Point3(Point):
    z: int = 0


def test_values_compare_hash_and_print_like_dataclasses() -> None:
    assert Point(1) == Point(1, (), "p") and hash(Point(1)) == hash(Point(x=1))
    assert Point(1) != Point(2) and Point(1) != (1, (), "p")
    assert repr(Point(1, ("a",))) == "Point(x=1, tags=('a',), label='p')"
    assert repr(Bag([1], secret="pw")) == "Bag(items=[1])"
    with pytest.raises(TypeError):
        hash(Bag())  # mutable and compared by value: unhashable, as a dataclass


def test_defaults_factories_and_bad_arguments() -> None:
    first, second = Bag(), Bag()
    first.items.append(1)
    assert second.items == []  # a fresh list each
    with pytest.raises(TypeError, match="missing argument 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected"):
        Point(1, nope=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="twice"):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 3 arguments"):
        Point(1, (), "p", 4)  # type: ignore[call-arg]


def test_frozen_slots_inheritance_and_helpers() -> None:
    with pytest.raises(FrozenInstanceError):
        Point(1).x = 2  # type: ignore[misc]
    assert not hasattr(Row("a"), "__dict__") and Row("a").count == 0
    p = Point3(1, z=3)
    assert [f.name for f in fields(p)] == ["x", "tags", "label", "z"] and p.z == 3 and p.label == "p"
    assert replace(p, x=5) == Point3(5, z=3)
    assert asdict(Point3(1, ("t",))) == {"x": 1, "tags": ("t",), "label": "p", "z": 0}
    match Point(7, label="q"):
        case Point(x, _, label):
            assert (x, label) == (7, "q")

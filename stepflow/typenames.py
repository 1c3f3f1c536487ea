"""typing's base classes, for mypy, without importing typing at run time.

`typing` costs ~4 ms to import here (it brings `re`), more than a quarter of what
`stepflow run -- true` may spend on start-up (issue 17). Annotations are strings (PEP 563),
so only the names a class inherits from must exist when the module runs: a Protocol is a
plain base then, a TypedDict a dict. mypy sees typing's own names.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol as Protocol
    from typing import TypedDict as TypedDict
else:
    Protocol = object  # what a protocol promises is checked by mypy, not at run time

    class TypedDict(dict):  # noqa: D101  (only its subclasses' annotations matter)
        def __init_subclass__(cls, total: bool = True, **kwargs: object) -> None:
            super().__init_subclass__(**kwargs)

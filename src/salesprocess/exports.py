"""A package's public names, imported when first used (PEP 562).

``import salesprocess`` imports none of the library's modules, and ``salesprocess.storage``
none of its adapters: a program pays for the modules it uses (the command line starts in a
fraction of the time, and no database driver loads unasked). A package lists where each of its
names lives and takes its module ``__getattr__`` and ``__dir__`` from :func:`lazy_exports`;
it imports the same names under ``typing.TYPE_CHECKING`` for type checkers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, tuple[str, ...]], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return the ``__getattr__`` and ``__dir__`` of ``package``.

    ``homes`` maps each module to the public names it defines; ``namespace`` is the package's
    ``globals()``, where a name is kept once imported (the next use is a plain look-up). A
    name no module defines may be a submodule, imported as ``import package.name`` would.
    """
    home_of = {name: module for module, names in homes.items() for name in names}
    public = namespace.get("__all__", ())

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's own name
        home = home_of.get(name)
        try:
            value = (
                getattr(import_module(home), name) if home else import_module(f"{package}.{name}")
            )
        except ModuleNotFoundError as error:
            if home or error.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the module hook's own name
        return sorted({*namespace, *public})

    return __getattr__, __dir__

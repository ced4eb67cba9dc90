"""A package's public names, imported when first used (PEP 562).

``import salesprocess`` imports none of the library's modules, and ``salesprocess.storage``
none of its adapters: a program pays for the modules it uses (the command line starts in a
fraction of the time, and no database driver loads unasked). A package lists where each of its
names lives and takes its module ``__getattr__`` and ``__dir__`` from :func:`lazy_exports`;
it imports the same names under ``typing.TYPE_CHECKING`` for type checkers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any, Final

__all__ = ["PACKAGES_FIRST", "lazy_exports"]

#: The packages whose ``__init__`` imports their own modules. Python imports a module of one
#: (``salesprocess.commands.leads``) holding that module's lock, then the package, whose
#: ``__init__`` wants the module's lock back: two threads using two names first (a threaded
#: web app's first requests), one importing the package and one a module of it alone, can
#: each hold what the other waits for, and one fails (a ``_DeadlockError``, a partly
#: initialised module, a ``KeyError``). ``import salesprocess`` importing the whole library
#: in one thread never met it. A name whose import fails so is imported again, these first.
PACKAGES_FIRST: Final = ("salesprocess.commands", "salesprocess.reports")


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
        if not home and not name.isidentifier():  # "storage.sqlite", ".": no attribute's name
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            value = getattr(_imported(home), name) if home else _imported(f"{package}.{name}")
        except ModuleNotFoundError as error:
            if home or error.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the module hook's own name
        return sorted({*namespace, *public})

    return __getattr__, __dir__


#: How many times a name's import is tried when other threads' imports get in its way.
_TRIES: Final = 8


def _imported(module: str) -> Any:
    """Import ``module``; if another thread's import got in its way, again, packages first.

    A failed import holds no lock once it has failed: after a pause, importing
    :data:`PACKAGES_FIRST` waits for the thread that is importing one of them, and the next
    try finds them whole (unless yet another thread met this one there meanwhile: hence a
    few tries, 0.25 s at most).
    """
    for tried in range(1, _TRIES + 1):
        try:
            for package in PACKAGES_FIRST if tried > 1 else ():
                import_module(package)
            return import_module(module)
        except (ImportError, KeyError, RuntimeError) as error:
            if tried == _TRIES or not _raced(error):
                raise
        # Let the thread this one met take the locks this one gave back: retried at once, this
        # one could take the package's lock first again, and meet it again.
        time.sleep(0.001 * 2**tried)
    raise AssertionError("unreachable")  # pragma: no cover


def _raced(error: BaseException) -> bool:
    """Return whether ``error`` is how an import fails when two threads meet in a package."""
    if isinstance(error, ModuleNotFoundError):
        return False
    if isinstance(error, ImportError):
        return "partially initialized module" in str(error)
    if isinstance(error, KeyError):  # a package another thread's failed import took away
        return bool(error.args) and str(error.args[0]).startswith(PACKAGES_FIRST)
    return type(error).__name__ == "_DeadlockError"  # importlib's, a RuntimeError

"""The public surface: names, docstrings, and what importing the package pulls in."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import salesprocess as sp
from test_layers import DOMAIN

SRC = Path(sp.__file__).parent
FORBIDDEN_IN_DOMAIN = {
    "sqlite3",
    "psycopg",
    "argparse",
    "click",
    "socket",
    "subprocess",
    "os",
    "pathlib",
    "io",
    "matplotlib",
}
PUBLIC = [name for name in sp.__all__ if name != "__version__"]


def _modules_of_public_names() -> list[str]:
    """Every module of the package (the public names live in them)."""
    modules = {
        value.__name__ if inspect.ismodule(value) else value.__module__
        for value in (getattr(sp, name) for name in PUBLIC)
    }
    modules.update(
        info.name
        for info in pkgutil.walk_packages(sp.__path__, "salesprocess.")
        if info.name != "salesprocess.storage.postgres" or _has("psycopg")
    )
    return sorted(modules)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_all_names_exist():
    """Every name in salesprocess.__all__ is importable from the package."""
    missing = [name for name in sp.__all__ if not hasattr(sp, name)]
    assert missing == []


def test_all_is_sorted_and_unique():
    """__all__ is sorted and lists each name once."""
    assert list(sp.__all__) == sorted(set(sp.__all__))


def test_version_is_a_string():
    """__version__ is a version string."""
    assert isinstance(sp.__version__, str)
    assert sp.__version__.count(".") >= 1


def test_package_docstring():
    """The package explains itself."""
    assert (sp.__doc__ or "").strip()


@pytest.mark.parametrize("name", PUBLIC)
def test_public_names_have_docstrings(name):
    """Each public name carries its own docstring."""
    obj = getattr(sp, name)
    assert (obj.__doc__ or "").strip(), f"salesprocess.{name} has no docstring"


def _public_members(module_name: str) -> list[tuple[str, object]]:
    """The module's public functions and classes, and the public methods of those classes."""
    module = importlib.import_module(module_name)
    found: list[tuple[str, object]] = []
    names = getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")])
    for name in names:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if getattr(obj, "__module__", None) != module_name:
            continue
        found.append((f"{module_name}.{name}", obj))
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if attr.startswith("_"):
                    continue
                function = value
                if isinstance(value, staticmethod | classmethod):
                    function = value.__func__
                elif isinstance(value, property):
                    function = value.fget
                if inspect.isfunction(function):
                    found.append((f"{module_name}.{name}.{attr}", function))
    return found


@pytest.mark.parametrize("module_name", _modules_of_public_names())
def test_public_members_have_docstrings(module_name):
    """Every public function, class and method of the public modules has a docstring."""
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no module docstring"
    undocumented = [
        qualname
        for qualname, obj in _public_members(module_name)
        if not (obj.__doc__ or "").strip()
    ]
    assert undocumented == []


def _type_checking_imports(package: str) -> dict[str, tuple[str, ...]]:
    """The names ``package``'s ``__init__`` imports for type checkers, by module."""
    spec = importlib.util.find_spec(package)
    assert spec is not None
    assert spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    (block,) = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    ]
    found: dict[str, tuple[str, ...]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        assert node.module
        for alias in node.names:
            if node.module == package:  # a submodule: imported as package.name, no table entry
                continue
            found[node.module] = (*found.get(node.module, ()), alias.name)
    return found


@pytest.mark.parametrize("package", ["salesprocess", "salesprocess.storage"])
def test_the_lazy_names_are_the_names_type_checkers_see(package: str) -> None:
    """Each package's table of homes says what its TYPE_CHECKING imports say, name by name,
    and lists every public name: what mypy checks is what a program gets."""
    module = importlib.import_module(package)
    homes = {home: tuple(sorted(names)) for home, names in module._HOMES.items()}
    seen = {home: tuple(sorted(names)) for home, names in _type_checking_imports(package).items()}
    assert homes == seen
    listed = {name for names in homes.values() for name in names}
    submodules = {name for name in module.__all__ if importlib.util.find_spec(f"{package}.{name}")}
    assert set(module.__all__) - {"__version__"} == listed | submodules
    for home, names in homes.items():
        for name in names:
            assert getattr(module, name) is getattr(importlib.import_module(home), name)


def test_import_loads_none_of_the_library_until_a_name_is_used():
    """import salesprocess runs no module of the library; the first use of a name runs its own."""
    result = _run(
        """
        import json, sys
        import salesprocess
        before = sorted(m for m in sys.modules if m.startswith("salesprocess"))
        salesprocess.Money
        after = "salesprocess.money" in sys.modules, "salesprocess.reports" in sys.modules
        print(json.dumps([before, after, "Money" in dir(salesprocess)]))
        """
    )
    assert result.returncode == 0, result.stderr
    before, after, listed = json.loads(result.stdout)
    assert before == ["salesprocess", "salesprocess.exports"]
    assert after == [True, False]
    assert listed


@pytest.mark.parametrize("second", ["LeadDetails", "UnitOfWork"])
def test_two_threads_using_names_first_both_get_them(second: str) -> None:
    """One thread imports salesprocess.commands for its name while another imports a module
    of that package alone (LeadDetails' home, or one UnitOfWork's home imports): both get
    their names. Python's import locks made one of them fail with a _DeadlockError."""
    result = _run(
        f"""
        import importlib.machinery as machinery, json, threading, time
        inside = threading.Event()
        create = machinery.SourceFileLoader.create_module

        def stalled(self, spec):
            # Hold salesprocess.commands (its lock taken, no module yet) while the other starts.
            if spec.name == "salesprocess.commands" and not inside.is_set():
                inside.set()
                time.sleep(0.5)
            return create(self, spec)

        machinery.SourceFileLoader.create_module = stalled
        import salesprocess as sp
        got, errors = {{}}, []

        def use(name):
            try:
                got[name] = getattr(sp, name)
            except Exception as error:
                errors.append(repr(error))

        first = threading.Thread(target=use, args=("LeadCapture",))
        first.start()
        inside.wait()
        second = threading.Thread(target=use, args=({second!r},))
        second.start()
        first.join()
        second.join()
        from salesprocess.commands import LeadCapture
        print(json.dumps([errors, sorted(got), got["LeadCapture"] is LeadCapture]))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[], sorted(["LeadCapture", second]), True]


def test_packages_first_are_the_packages_that_import_their_own_modules() -> None:
    """exports.PACKAGES_FIRST lists every package whose __init__ imports a module of its own,
    so that a retried name can import it whole: but the command line's (which runs alone) and
    salesprocess itself (imported, with salesprocess.exports, before any name is used)."""
    from salesprocess import exports  # noqa: PLC0415 - the module under test

    source = Path(sp.__file__).parent
    found = set()
    for init in source.rglob("__init__.py"):
        package = ".".join(init.parent.relative_to(source.parent).parts)
        imported = {
            node.module
            for node in ast.parse(init.read_text(encoding="utf-8")).body
            if isinstance(node, ast.ImportFrom) and node.module
        }
        if any(module.startswith(f"{package}.") for module in imported):
            found.add(package)
    assert found - {"salesprocess", "salesprocess.cli"} == set(exports.PACKAGES_FIRST)


def test_a_misspelt_name_is_an_attribute_error():
    """A name the package does not have raises AttributeError, as an eager package would."""
    with pytest.raises(AttributeError, match="has no attribute 'Acount'"):
        sp.Acount  # noqa: B018 - the look-up is the test
    with pytest.raises(AttributeError, match="has no attribute 'SQLiteRepo'"):
        importlib.import_module("salesprocess.storage").SQLiteRepo  # noqa: B018
    # Nor is a dotted path, or text that is no name, an attribute (the submodule fallback
    # imported "storage.sqlite" and raised ModuleNotFoundError from hasattr for ".").
    for odd in ("storage.sqlite", ".", "..", "cli.app", " storage"):
        assert not hasattr(sp, odd), odd
        assert not hasattr(importlib.import_module("salesprocess.storage"), odd), odd


def test_import_loads_no_driver_and_no_hypothesis():
    """import salesprocess loads neither sqlite3, psycopg nor hypothesis."""
    result = _run(
        """
        import json, sys
        import salesprocess
        sales = salesprocess.SalesProcess()
        watched = ("sqlite3", "psycopg", "hypothesis")
        print(json.dumps(sorted(m for m in watched if m in sys.modules)))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_strategies_without_hypothesis_name_the_extra():
    """Without Hypothesis, importing salesprocess.strategies names salesprocess[testing]."""
    result = _run(
        """
        import sys
        sys.modules["hypothesis"] = None
        try:
            import salesprocess.strategies
        except ImportError as error:
            print("ImportError:", error)
        else:
            print("imported")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ImportError:")
    assert "salesprocess[testing]" in result.stdout


def test_core_works_without_hypothesis():
    """The package itself works when Hypothesis is not installed."""
    result = _run(
        """
        import sys
        sys.modules["hypothesis"] = None
        import salesprocess as sp
        sales = sp.SalesProcess()
        print(sales.capture_lead("A", email="a@a.example", channel="referral").stage)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "prospect"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    dynamic = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name | ast.Attribute)
        and getattr(node.func, "attr", getattr(node.func, "id", None))
        in ("__import__", "import_module")
    ]
    if dynamic:
        found.add("<dynamic import>")
    return found


def test_criteria_reads_only_the_file_its_caller_names():
    """criteria.py's one I/O is Criteria.from_json reading a path: os and pathlib, nothing else."""
    imported = _imported_modules(SRC / "criteria.py")
    assert imported & (FORBIDDEN_IN_DOMAIN | {"<dynamic import>"}) <= {"os", "pathlib"}


# criteria.py reads the file its caller names: test_criteria_reads_only_the_file_its_caller_names
@pytest.mark.parametrize("module", sorted(DOMAIN - {"criteria"}))
def test_domain_modules_import_no_io(module):
    """Domain modules import no I/O, driver or CLI module, not even dynamically."""
    imported = _imported_modules(SRC / f"{module}.py")
    assert imported
    assert imported & (FORBIDDEN_IN_DOMAIN | {"<dynamic import>"}) == set()

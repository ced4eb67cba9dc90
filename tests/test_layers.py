"""The layers a reader sees in the tree, held by a test: what may import what.

domain (values, lifecycle, criteria, policies) -> use cases (``commands``, ``unit_of_work``,
``imports`` and ``screening``, the bulk loads run through it, and ``use_cases``, the
facades' commands as steps) -> read side (``reports``) -> adapters
(``storage``) -> entry points (``process``, the package itself, and the kits for users'
tests). Each layer imports only the layers before it; the use cases and the read side see
storage only through its protocol.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import salesprocess as sp

SRC = Path(sp.__file__).parent

DOMAIN = {
    "account",
    "checks",
    "chronology",
    "clock",
    "contact",
    "criteria",
    "criteria_sql",
    "currencies",
    "customer_service",
    "errors",
    "events",
    "frameworks",
    "jsonlogic",
    "lifecycle",
    "money",
    "qualification",
    "referral_codes",
    "rules",
    "stage",
}
PROTOCOL = {"storage.protocol", "storage.selection", "storage.async_protocol"}
COMMANDS = {"commands"}
#: Each layer: a predicate for its modules, and what (besides itself) they may import.
ALLOWED: dict[str, set[str]] = {
    "domain": DOMAIN,
    "commands": DOMAIN | COMMANDS,
    "unit_of_work": DOMAIN | COMMANDS | PROTOCOL,
    "imports": DOMAIN | COMMANDS | PROTOCOL | {"unit_of_work"},
    "screening": DOMAIN | COMMANDS | PROTOCOL | {"unit_of_work"},
    # what both facades share: their commands as steps of work, for either runner
    "use_cases": DOMAIN | COMMANDS | PROTOCOL | {"unit_of_work", "imports", "screening"},
    "reports": DOMAIN | PROTOCOL | {"reports"},
    "storage": DOMAIN | {"storage"},
    # a package's names imported on first use: stdlib only, below every layer
    "exports": set(),
}
#: Modules that may import more than their layer: the SQL adapters answer reports in SQL, so
#: they use the read side's result types, argument checks and aggregation (and build nothing
#: of a report themselves). No other adapter module may import the read side.
EXTRA: dict[str, set[str]] = {
    "storage": {"exports"},  # the package itself: its adapters imported on first use
    "storage.sqlite": {"reports"},
    "storage.postgres": {"reports"},
    "storage.postgres_async": {"reports"},
}


def _layer(module: str) -> str:
    top = module.split(".", maxsplit=1)[0]
    if top in DOMAIN:
        return "domain"
    if top in ALLOWED:
        return top
    return "entry"


def _modules() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found.append(".".join(parts))
    return found


def _ours(module: str) -> set[str]:
    """The salesprocess modules ``module`` imports (type-only imports count too)."""
    path = SRC.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "salesprocess" and not node.level:
            names = [f"salesprocess.{alias.name}" for alias in node.names]  # a module or a name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        imported.update(
            "salesprocess (the package)"
            if name == "salesprocess"
            else name.removeprefix("salesprocess.")
            for name in names
            if name == "salesprocess" or name.startswith("salesprocess.")
        )
    return imported


def _permitted(target: str, allowed: set[str]) -> bool:
    return any(target == a or target.startswith(f"{a}.") for a in allowed)


@pytest.mark.parametrize("module", [m for m in _modules() if _layer(m) != "entry"])
def test_each_layer_imports_only_the_layers_before_it(module):
    """Domain, use cases, read side and adapters import only what their layer may."""
    layer = _layer(module)
    allowed = ALLOWED[layer] | {layer} | EXTRA.get(module, set())
    wrong = sorted(t for t in _ours(module) if not _permitted(t, allowed))
    assert wrong == [], f"{module} ({layer}) imports {wrong}"


def test_the_layers_cover_the_tree():
    """Every module is placed: the facade, the command line and the test kits are the entries."""
    entry = {m for m in _modules() if _layer(m) == "entry"}
    assert {m for m in entry if not m.startswith("cli.")} == {
        "__main__", "cli", "json_views", "process", "process_async", "report_requests",
            "strategies", "testing",
    }  # fmt: skip


#: Libraries of an entry point's own: a command line's, a terminal's, a chart's.
ENTRY_ONLY = {"click", "rich", "matplotlib", "typer"}


@pytest.mark.parametrize("module", [m for m in _modules() if not m.startswith("cli")])
def test_only_the_command_line_imports_cli_libraries(module):
    """Click, rich and plotting stay in salesprocess.cli: the library itself needs none."""
    path = SRC.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tops = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            tops.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            tops.add(node.module.split(".")[0])
    assert tops & ENTRY_ONLY == set()


def test_the_rule_catches_a_use_case_importing_an_adapter():
    """The check itself fails where it should (an adapter imported by a use case)."""
    assert not _permitted("storage.memory", ALLOWED["unit_of_work"])
    assert not _permitted("storage.sqlite", ALLOWED["reports"])
    assert _permitted("storage.protocol", ALLOWED["reports"])
    assert not _permitted("commands.leads", ALLOWED["domain"])
    assert not _permitted("process", ALLOWED["storage"])
    assert not _permitted("SalesProcess", ALLOWED["domain"])  # from salesprocess import ...
    assert not _permitted("salesprocess (the package)", ALLOWED["commands"])

"""Each error class names the HTTP status a web API would usually answer (docs/web.md)."""

from __future__ import annotations

import re
from pathlib import Path

import salesprocess as sp
from salesprocess import errors

EXPECTED = {
    "SalesProcessError": 500,
    "ValidationError": 422,
    "CurrencyMismatch": 422,
    "CriteriaError": 422,
    "BadRows": 422,
    "NotFound": 404,
    "InvalidTransition": 409,
    "QualificationRefused": 409,
    "ConflictError": 409,
    "StaleWrite": 409,
    "StorageError": 503,
}


def test_every_error_class_documents_its_status() -> None:
    """Every exception in errors.__all__ says **NNN** in its docstring, the status expected."""
    classes = {
        name: getattr(errors, name)
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), BaseException)
    }
    assert set(classes) == set(EXPECTED)
    for name, kind in classes.items():
        found = re.findall(r"\*\*(\d{3}) ", kind.__doc__ or "")
        assert found == [str(EXPECTED[name])], name
        assert getattr(sp, name) is kind


def test_the_web_page_says_the_same() -> None:
    """docs/web.md names each status next to its class."""
    page = (Path(__file__).parents[1] / "docs" / "web.md").read_text(encoding="utf-8")
    for name, status in EXPECTED.items():
        if name == "SalesProcessError":
            continue
        assert re.search(rf"`{name}`[^;]*?{status}", page), name

"""Marketing's prospect criteria, as data: a named, versioned JSON Logic document.

Marketing owns who is worth calling and changes its mind every quarter; a developer should not
have to ship code for that. So criteria are a JSON Logic document (the format query-builder UIs
export) with a ``name`` and a ``version`` for the record. Loading one validates and compiles it
once (see :mod:`salesprocess.jsonlogic`); every mistake in it is a
:class:`~salesprocess.errors.CriteriaError` at load time, naming where in the document it is.

A :class:`Criteria` is a :class:`~salesprocess.rules.QualificationRule`: ``evaluate`` gives a
:class:`~salesprocess.rules.RuleResult`; ``judge`` gives an :class:`Explanation`, clause by
clause, of what was asked and what the account's values were, and ``explain`` renders it as
text for a person.

>>> criteria = Criteria.from_json(
...     '{"and": [{"in": [{"var": "industry"}, ["manufacturing", "logistics"]]},'
...     '         {">=": [{"var": "employees"}, 50]}]}',
...     name="EU mid-market", version="2026-Q4",
... )
>>> criteria.evaluate({"industry": "manufacturing", "employees": 12}).passed
False
>>> print(criteria.explain({"industry": "manufacturing", "employees": 12}))
EU mid-market (2026-Q4): not met
  pass  industry in ['manufacturing', 'logistics']  (industry: 'manufacturing')
  FAIL  employees >= 50  (employees: 12)
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import stat
import types
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, Final, overload

import attrs

from salesprocess.account import Account
from salesprocess.checks import text_validator
from salesprocess.errors import CriteriaError
from salesprocess.jsonlogic import (
    DEFAULT_BUDGET,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_NODES,
    Budget,
    CompiledLogic,
    _wrap,
    compile_logic,
    lookup,
    to_string,
    truthy,
)
from salesprocess.rules import RuleResult

__all__ = ["ClauseResult", "Criteria", "Explanation"]


_SHOWN: Final = 80  # characters of a value shown in a clause or a reason; the rest is counted
_REPR: Final = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _SHOWN
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = 12
_REPR.maxdict = 8
_REPR.maxlevel = 3


def _show(value: object) -> str:
    """``repr(value)`` for a person; a value whose repr fails (a huge int) still shows.

    A long repr is cut to its start and its length, so that explaining an account with a
    megabyte of notes does not copy the megabyte into every line.
    """
    if isinstance(value, str) and len(value) > _SHOWN:
        return f"{str.__repr__(value[: _SHOWN - 20])}... ({len(value)} characters)"
    try:
        text = _REPR.repr(value)  # bounded: the repr of a megabyte costs as little as of a word
    except Exception:  # showing a value must not fail the evaluation
        if isinstance(value, int):  # digits beyond sys.get_int_max_str_digits()
            return f"<int of {len(Decimal(value).as_tuple().digits)} digits>"
        return f"<{type(value).__name__}>"
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 20]}... ({len(text)} characters)"


def _freeze_actual(values: Mapping[str, object]) -> Mapping[str, object]:
    return types.MappingProxyType(dict(values))


@attrs.frozen
class ClauseResult:
    """One clause of the criteria, judged on one account.

    ``text`` is what the clause asks, in words (``employees >= 50``); ``actual`` holds the
    account's values of the variables it reads (``{"employees": 120}``); ``error`` is set when
    evaluating the clause failed (the clause then counts as not passed).
    """

    text: str
    actual: Mapping[str, object] = attrs.field(converter=_freeze_actual, hash=False)
    passed: bool
    error: str | None = None

    def __str__(self) -> str:
        line = f"{'pass' if self.passed else 'FAIL'}  {self.text}"
        if self.actual:
            shown = ", ".join(f"{k}: {_show(v)}" for k, v in self.actual.items())
            line += f"  ({shown})"
        if self.error:
            line += f"  [error: {self.error}]"
        return line


@attrs.frozen
class Explanation(Sequence[ClauseResult]):
    """The clause-by-clause account of one evaluation; a sequence of :class:`ClauseResult`.

    ``passed`` is the verdict of the whole document (for ``and`` it is every clause passing,
    for ``or`` any). ``str()`` renders it for a person, one line per clause.
    """

    criteria: str
    version: str
    passed: bool
    clauses: tuple[ClauseResult, ...]

    @overload
    def __getitem__(self, index: int) -> ClauseResult: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[ClauseResult, ...]: ...
    def __getitem__(self, index: int | slice) -> ClauseResult | tuple[ClauseResult, ...]:
        return self.clauses[index]

    def __len__(self) -> int:
        return len(self.clauses)

    def __iter__(self) -> Iterator[ClauseResult]:
        return iter(self.clauses)

    @property
    def failed(self) -> tuple[ClauseResult, ...]:
        """Return the clauses that did not pass."""
        return tuple(c for c in self.clauses if not c.passed)

    def render(self) -> str:
        """Return the explanation as text: a headline, then one line per clause."""
        head = f"{self.criteria} ({self.version}): {'met' if self.passed else 'not met'}"
        return "\n".join([head] + [f"  {c}" for c in self.clauses])

    def __str__(self) -> str:
        return self.render()


# -- describing a document in words ---------------------------------------------------------

_INFIX = frozenset(
    {"==", "===", "!=", "!==", "<", "<=", ">", ">=", "in", "+", "-", "*", "/", "%", "??"}
)
_WORDY = frozenset({"and", "or", "!", "if", "?:"})
_SCOPED = frozenset({"map", "filter", "all", "none", "some", "reduce"})


def _literal(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return to_string(value)
    if isinstance(value, str):
        return _show(value)  # a literal of 100 KB is shown by its start, not copied
    if isinstance(value, (list, tuple)):
        return _listing([_describe(v, "top") for v in value[:_LISTED]], len(value))
    return "{}"


_LISTED: Final = 12  # elements of a literal array shown in a clause's text


def _listing(shown: list[str], length: int) -> str:
    more = f", ... ({length} items)" if length > len(shown) else ""
    return "[" + ", ".join(shown) + more + "]"


def _operation(node: object) -> tuple[str, list[object]] | None:
    if isinstance(node, Mapping) and len(node) == 1:
        ((op, args),) = node.items()
        return str(op), list(args) if isinstance(args, (list, tuple)) else [args]
    return None


def _val_path(args: list[object]) -> tuple[int, str] | None:
    """Return a ``val`` path as (scope level, dotted keys), or None if computed by logic."""
    level = 0
    if args and isinstance(args[0], list) and len(args[0]) == 1:
        step = args[0][0]
        if not isinstance(step, int) or isinstance(step, bool):
            return None
        level, args = abs(step), args[1:]
    if not all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in args):
        return None
    return level, ".".join(to_string(a) for a in args)


def _val_name(args: list[object], scope: str) -> str | None:
    found = _val_path(args)
    if found is None:
        return None
    level, name = found
    if level:
        return f"^{level}.{name}" if name else f"^{level}"
    if not name and args:  # the key "" itself, not the whole data
        return None
    return _var_name(name, scope)


def _plain(value: object) -> str:
    """Return a value kept as it is (under ``preserve``) in words."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_show(k)}: {_plain(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return _listing([_plain(v) for v in value[:_LISTED]], len(value))
    return _literal(value)


def _describe_value(op: str, node: object, args: list[object], scope: str) -> str:
    """Return ``val``, ``exists`` or ``preserve`` in words."""
    if op == "preserve":
        return _plain(node[op])  # type: ignore[index]
    name = _val_name(args, scope)
    if op == "exists":
        return f"exists({name if name is not None else '...'})"
    return name if name is not None else f"val({', '.join(_describe(a, scope) for a in args)})"


def _var_name(path: object, scope: str) -> str:
    name = "" if path is None else to_string(path)
    if scope == "item":
        return "it" if name == "" else f"it.{name}"
    return name or "data"


def _describe(node: object, scope: str) -> str:  # noqa: PLR0911, PLR0912 - one shape per family
    """Return a JSON Logic node in words, e.g. ``employees >= 50``."""
    operation = _operation(node)
    if operation is None:
        return _literal(node)
    op, args = operation

    def part(arg: object, inner_scope: str = scope) -> str:
        inner = _operation(arg)
        text = _describe(arg, inner_scope)
        if inner is not None and (inner[0] in _INFIX or inner[0] in _WORDY):
            return f"({text})"
        return text

    if op == "var":
        if not args or isinstance(args[0], (Mapping, list)):
            return "data" if not args else f"var({_describe(args[0], scope)})"
        name = _var_name(args[0], scope)
        return name if len(args) < 2 else f"{name} (default {_describe(args[1], scope)})"
    if op in ("val", "exists", "preserve"):
        return _describe_value(op, node, args, scope)
    if op in ("and", "or"):
        return f" {op} ".join(part(a) for a in args) if args else "false"
    if op == "!":
        return f"not {part(args[0])}" if args else "true"
    if op in ("if", "?:"):
        words = []
        for i in range(0, len(args) - 1, 2):
            words.append(f"{'if' if i == 0 else 'elif'} {part(args[i])} then {part(args[i + 1])}")
        if len(args) % 2:
            words.append(f"else {part(args[-1])}" if words else part(args[-1]))
        return " ".join(words) or "null"
    if op in _INFIX and len(args) >= 2:
        return f" {op} ".join(part(a) for a in args)
    if op == "-" and len(args) == 1:
        return f"-{part(args[0])}"
    if op in ("map", "filter", "all", "none", "some") and len(args) == 2:
        return f"{op}({_describe(args[0], scope)}, {_describe(args[1], 'item')})"
    if op == "reduce":
        inner = ["reduce" if i == 1 else scope for i in range(len(args))]
        return f"reduce({', '.join(_describe(a, s) for a, s in zip(args, inner, strict=True))})"
    return f"{op}({', '.join(_describe(a, scope) for a in args)})"


def _key(value: object) -> str | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return to_string(value) or None
    return None


def _variables(node: object, found: dict[str, None]) -> dict[str, None]:
    """Collect the data paths a node reads with constant paths, outside map/filter scopes."""
    operation = _operation(node)
    if operation is None:
        for item in node if isinstance(node, (list, tuple)) else ():
            _variables(item, found)
        return found
    op, args = operation
    keys: list[object] = []
    if op == "preserve":
        return found
    if op == "var" and args:
        keys = [args[0]]
    elif op in ("val", "exists"):
        path = _val_path(args)
        if path is not None and path[0] == 0 and all("." not in str(a) for a in args):
            keys = [path[1]]
    elif op == "missing":
        keys = args[0] if len(args) == 1 and isinstance(args[0], list) else args
    elif op == "missing_some" and len(args) > 1 and isinstance(args[1], list):
        keys = args[1]
    for key in keys:
        name = _key(key)
        if name:
            found[name] = None
    for i, arg in enumerate(args):
        if (i != 1 or op not in _SCOPED) and (i == 0 or op != "try"):
            _variables(arg, found)  # scoped logic reads each item, a try fallback the error
    return found


# -- the criteria ----------------------------------------------------------------------------


@attrs.frozen
class _Clause:
    text: str
    variables: tuple[str, ...]
    run: CompiledLogic


_check_label: Final = text_validator


def _copy(node: object) -> object:
    """Return a plain JSON copy of a validated document (lists, dicts with str keys)."""
    if isinstance(node, Mapping):
        return {str(k): _copy(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_copy(v) for v in node]
    return node


def _data_of(subject: object) -> object:
    """Return a subject's facts; what its own code raises becomes a CriteriaError."""
    try:
        facts = getattr(subject, "facts", None)
        return facts() if callable(facts) else subject
    except CriteriaError:
        raise
    except Exception as e:
        raise _wrap(e) from e


def _truth(value: object) -> bool:
    """``truthy`` of a result, where a value's own ``__str__`` may raise (a CriteriaError then)."""
    try:
        return truthy(value)
    except Exception as e:
        raise _wrap(e) from e


#: The facts an account gives from its own fields (:meth:`Account.facts`): they win over
#: attributes of the same name.
ACCOUNT_FIELDS: Final = frozenset(
    {"id", "name", "email", "phone", "stage", "do_not_contact", "source"}
)
_READS_ANY: Final = frozenset({"val", "exists", "missing", "missing_some"})


def _attributes_only(node: object) -> bool:
    """Whether ``node`` reads nothing of an account but attributes, by constant names.

    Then an account's attributes answer it as its whole facts would, without building them.
    """
    if isinstance(node, Mapping):
        operation = _operation(node)
        if operation is None:
            return not node
        op, args = operation
        if op in _READS_ANY:
            return False
        if op == "var":
            first = args[0] if args else ""
            if not isinstance(first, str) or not first or first.split(".")[0] in ACCOUNT_FIELDS:
                return False
        return all(_attributes_only(a) for a in args)
    if isinstance(node, list | tuple):
        return all(_attributes_only(item) for item in node)
    return True


def _restore(
    document: object, name: str, version: str, budget: Budget = DEFAULT_BUDGET
) -> Criteria:
    return Criteria(name=name, version=version, document=document, budget=budget)


@attrs.frozen(slots=False)
class Criteria:
    """A named, versioned JSON Logic document, validated and compiled when it is made.

    ``document`` is the JSON (a plain copy, kept for storage and display). Make one with
    :meth:`from_json` (text or a file) or :meth:`from_dict`; the constructor does the same
    with keyword arguments. Two criteria are equal when name, version and document are.

    ``budget`` (a :class:`~salesprocess.jsonlogic.Budget`, keyword only) bounds what one
    evaluation may cost; a document that needs more is refused when it is made, or, where the
    data decides, when it runs (see the budget section of the criteria guide).
    """

    name: str = attrs.field(validator=_check_label)
    version: str = attrs.field(validator=_check_label)
    document: object = attrs.field(hash=False)
    budget: Budget = attrs.field(default=DEFAULT_BUDGET, kw_only=True, repr=False, eq=False)
    _run: CompiledLogic = attrs.field(init=False, repr=False, eq=False, hash=False)
    _clauses: tuple[_Clause, ...] = attrs.field(init=False, repr=False, eq=False, hash=False)
    _attributes_only: bool = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        run = compile_logic(
            self.document,
            max_depth=DEFAULT_MAX_DEPTH,
            max_nodes=DEFAULT_MAX_NODES,
            budget=self.budget,
        )
        # Validated (so shallow enough to copy); keep our own copy, safe from later mutation.
        object.__setattr__(self, "document", _copy(self.document))
        operation = _operation(self.document)
        parts = operation[1] if operation and operation[0] in ("and", "or") else [self.document]
        clauses = tuple(
            _Clause(
                text=_describe(part, "top"),
                variables=tuple(_variables(part, {})),
                run=compile_logic(part, budget=self.budget) if len(parts) > 1 else run,
            )
            for part in parts
        )
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_clauses", clauses)
        object.__setattr__(self, "_attributes_only", _attributes_only(self.document))
        # The compiled function itself answers ``criteria.apply(data)``: no wrapper call.
        object.__setattr__(self, "apply", run)

    def __reduce__(self) -> tuple[Any, tuple[object, str, str, Budget]]:
        return _restore, (self.document, self.name, self.version, self.budget)

    @classmethod
    def from_dict(
        cls, document: object, *, name: str, version: str, budget: Budget = DEFAULT_BUDGET
    ) -> Criteria:
        """Make criteria from a parsed JSON Logic document (``dict``, ``list``, scalars).

        >>> Criteria.from_dict({">": [{"var": "budget"}, 10000]}, name="budget", version="1")
        Criteria(name='budget', version='1', document={'>': [{'var': 'budget'}, 10000]})
        """
        return cls(name=name, version=version, document=document, budget=budget)

    @classmethod
    def from_json(
        cls,
        text_or_path: str | bytes | os.PathLike[str],
        *,
        name: str,
        version: str,
        budget: Budget = DEFAULT_BUDGET,
    ) -> Criteria:
        """Make criteria from JSON text (``str`` or UTF-8 ``bytes``), or from a JSON file.

        A ``str`` that starts with ``{`` or ``[`` (after white space), or that is valid JSON, is
        JSON text; any other ``str`` and any path-like object name a file (read as UTF-8),
        which must be a regular file of at most :data:`MAX_FILE_BYTES`. Anything else, and any
        failure to read, raises :class:`~salesprocess.errors.CriteriaError`; malformed JSON
        names the line and column, and the file when there is one.
        A number is read as a float when a float holds it exactly as written (``0.1``), else as
        the exact ``Decimal`` (``12345678901234567.89``, ``1e400``, an integer with more digits
        than ``int`` reads from text); other integers are ints.

        >>> Criteria.from_json('{"and": [true,]}', name="broken", version="1")
        Traceback (most recent call last):
        ...
        salesprocess.errors.CriteriaError: malformed JSON: Expecting value at line 1, column 15 (at $)
        """  # noqa: E501
        if isinstance(text_or_path, bytes):
            try:
                text_or_path = text_or_path.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CriteriaError(f"criteria bytes are not UTF-8: {e.reason}", path="$") from e
            return cls.from_dict(
                _parse(text_or_path, source=None), name=name, version=version, budget=budget
            )
        if isinstance(text_or_path, str):
            if not text_or_path.strip():
                raise CriteriaError("the criteria text is empty", path="$")
            if _looks_like_json(text_or_path):
                return cls.from_dict(
                    _parse(text_or_path, source=None), name=name, version=version, budget=budget
                )
        elif not isinstance(text_or_path, os.PathLike):
            raise CriteriaError(
                "criteria come from JSON text (str or bytes) or a file path, not "
                f"{type(text_or_path).__name__}",
                path="$",
            )
        text = _read_file(text_or_path)
        return cls.from_dict(
            _parse(text, source=str(text_or_path)), name=name, version=version, budget=budget
        )

    def apply(self, data: object) -> object:
        """Return the raw JSON Logic result of the document on ``data``.

        ``data`` is a Mapping (or any JSON value); the result is whatever the document computes.

        >>> Criteria.from_dict({"+": [{"var": "a"}, 1]}, name="n", version="1").apply({"a": 2})
        3
        """
        return self._run(data)

    def evaluate(self, subject: object) -> RuleResult:
        """Judge a subject: passed when the result is truthy (in JSON Logic's sense).

        ``subject`` is a Mapping of facts, or an object with a ``facts()`` method (an
        ``Account``). The reason names the failed clauses with the account's values.
        Evaluation errors (for example a division by zero) raise
        :class:`~salesprocess.errors.CriteriaError`.
        """
        data = _data_of(subject)
        passed = _truth(self._run(data))
        label = f"{self.name!r} ({self.version})"
        if passed:
            reason = f"meets {label}"
        else:
            failed = "; ".join(_short(c, data) for c in self._clauses if not _holds(c, data))
            reason = f"does not meet {label}" + (f": {failed}" if failed else "")
        return RuleResult(
            passed=passed, reason=reason, score=1.0 if passed else 0.0, rule=self.name
        )

    def explain(self, subject: object) -> str:
        """Return, for a person, the verdict and one line per clause with the values it read.

        It is ``str(self.judge(subject))``: ``explain()`` returns text throughout the library
        (as :meth:`QualificationReport.explain` and :meth:`ServiceRecommendation.explain` do).
        """
        return self.judge(subject).render()

    def passes(self, subject: object) -> bool:
        """Return whether ``subject`` meets the criteria; data they cannot judge does not.

        The screening verdict alone, as :meth:`judge` gives it (an evaluation error counts as
        not met), without the clause-by-clause account or :meth:`evaluate`'s reason: the cheap
        check a bulk screen makes for every prospect.
        """
        # A bulk screen's hot path: criteria that read attributes alone skip building facts.
        try:
            data = (
                subject.attributes
                if self._attributes_only and type(subject) is Account
                else _data_of(subject)
            )
            return _truth(self._run(data))
        except CriteriaError:
            return False

    def judge(self, subject: object) -> Explanation:
        """Judge each top-level clause on its own, with the values it read.

        The clauses are the operands of a top-level ``and`` / ``or``; any other document is
        one clause. A clause whose evaluation fails is reported as not passed, with the error.
        """
        data = _data_of(subject)
        try:
            passed = _truth(self._run(data))
        except CriteriaError:
            passed = False
        return Explanation(
            criteria=self.name, version=self.version, passed=passed, clauses=self._judge(data)
        )

    @property
    def clauses(self) -> tuple[str, ...]:
        """Return each top-level clause in words."""
        return tuple(c.text for c in self._clauses)

    @property
    def variables(self) -> tuple[str, ...]:
        """Return the data paths the criteria read (outside ``map``/``filter`` scopes)."""
        return tuple(dict.fromkeys(v for c in self._clauses for v in c.variables))

    def to_json(self, *, indent: int | None = None) -> str:
        """Return the document as JSON text, laid out as ``json.dumps`` would.

        A Decimal is written as a number with its exact digits (``Decimal("0.10")`` as
        ``0.10``), never rounded through a float. :meth:`from_json` reads such a number back
        as the same float when a float holds it as written, else as the exact Decimal.

        >>> Criteria.from_dict({">": [{"var": "x"}, Decimal("12345678901234567.89")]},
        ...                    name="x", version="1").to_json()
        '{">": [{"var": "x"}, 12345678901234567.89]}'
        """
        return _dumps(self.document, indent)

    def _judge(self, data: object) -> tuple[ClauseResult, ...]:
        results = []
        for clause in self._clauses:
            actual = _read(data, clause.variables)
            try:
                results.append(ClauseResult(clause.text, actual, _truth(clause.run(data))))
            except CriteriaError as e:
                results.append(ClauseResult(clause.text, actual, False, str(e)))
        return tuple(results)


def _holds(clause: _Clause, data: object) -> bool:
    try:
        return _truth(clause.run(data))
    except CriteriaError:
        return False


def _read(data: object, variables: tuple[str, ...]) -> dict[str, object]:
    """Return the values of ``variables`` in ``data``, for display."""
    try:
        return {v: lookup(data, v) for v in variables}
    except Exception:  # data that cannot be read shows no values; the clause's own
        return {}  # evaluation reports the failure as a CriteriaError


def _short(clause: _Clause, data: object) -> str:
    actual = _read(data, clause.variables)
    if not actual:
        return clause.text
    return f"{clause.text} ({', '.join(f'{k}: {_show(v)}' for k, v in actual.items())})"


# -- JSON text ---------------------------------------------------------------------------------


def _number_text(value: int | float | Decimal) -> str:
    """Return a number as JSON number text with its exact digits."""
    if isinstance(value, Decimal):
        return Decimal.__str__(value)  # always JSON's grammar for a finite Decimal: 1.50, 1E+30
    if isinstance(value, float):
        return float.__repr__(value)  # the shortest text that reads back as the same float
    try:
        return int.__repr__(value)
    except ValueError:  # more digits than int -> str allows (sys.get_int_max_str_digits)
        return Decimal.__str__(Decimal(value))  # exact too, and not limited


def _encode(node: object, indent: str | None, level: int, out: list[str]) -> None:
    """Append ``node`` as JSON text to ``out``, laid out as ``json.dumps`` does."""
    if node is None:
        out.append("null")
    elif node is True or node is False:
        out.append("true" if node else "false")
    elif isinstance(node, str):
        out.append(encode_basestring_ascii(node))
    elif isinstance(node, (int, float, Decimal)):
        out.append(_number_text(node))
    elif isinstance(node, dict):
        _encode_container(list(node.items()), "{}", indent, level, out)
    elif isinstance(node, list):
        _encode_container([(None, v) for v in node], "[]", indent, level, out)
    else:  # pragma: no cover - documents are validated, then copied to plain JSON
        raise TypeError(f"{type(node).__name__} is not a JSON value")


def _encode_container(
    items: list[tuple[str | None, object]],
    brackets: str,
    indent: str | None,
    level: int,
    out: list[str],
) -> None:
    """Append an object's (key, value) pairs or an array's (None, value) pairs to ``out``."""
    if not items:
        out.append(brackets)
        return
    inner = "" if indent is None else "\n" + indent * (level + 1)
    out.append(brackets[0] + inner)
    for i, (key, value) in enumerate(items):
        if i:
            out.append(", " if indent is None else "," + inner)
        if key is not None:
            out.append(encode_basestring_ascii(key) + ": ")
        _encode(value, indent, level + 1, out)
    out.append(("" if indent is None else "\n" + indent * level) + brackets[1])


def _dumps(document: object, indent: int | None) -> str:
    """``json.dumps(document, indent=indent)``, with Decimals written with their exact digits."""
    out: list[str] = []
    _encode(document, None if indent is None else " " * indent, 0, out)
    return "".join(out)


def _parse_float(text: str) -> float | Decimal:
    """Read a JSON number with a fraction or exponent: a float when one holds it as written.

    ``0.1`` and ``2.50`` are floats (their shortest form is the number written), as in
    JavaScript; a number a float would round (``12345678901234567.89``, ``1e400``) is read
    as the exact Decimal instead, so no digit is silently lost.
    """
    x = float(text)
    if math.isfinite(x) and Decimal(repr(x)) == Decimal(text):
        return x
    return Decimal(text)


def _parse_int(text: str) -> int | Decimal:
    """Read a JSON integer; one too long for ``int`` (over 4,300 digits) is read as a Decimal."""
    try:
        return int(text)
    except ValueError:
        return Decimal(text)


def _loads(text: str) -> object:
    return json.loads(
        text,
        parse_float=_parse_float,
        parse_int=_parse_int,
        parse_constant=_reject_constant,
        object_pairs_hook=_no_duplicates,
    )


#: The largest criteria file read: a document is marketing's rules, not data.
MAX_FILE_BYTES: Final = 1 << 20


def _read_file(where: str | os.PathLike[str]) -> str:
    hint = " (text that is not JSON is taken as a file path)" if isinstance(where, str) else ""
    try:
        path = Path(where)
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise CriteriaError(f"criteria file {str(path)!r} is not a regular file{hint}")
        if info.st_size > MAX_FILE_BYTES:
            raise CriteriaError(
                f"criteria file {str(path)!r} has {info.st_size} bytes, more than the "
                f"{MAX_FILE_BYTES} a criteria document may have"
            )
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise CriteriaError(f"criteria file {str(path)!r} grew past {MAX_FILE_BYTES} bytes")
        return raw.decode("utf-8")
    except CriteriaError:
        raise
    except (OSError, ValueError) as e:  # a missing file, a NUL or lone surrogate in the path
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        shown_path = repr(os.fspath(where))[:120]
        raise CriteriaError(f"cannot read criteria file {shown_path}: {reason}{hint}") from e


def _looks_like_json(text: str) -> bool:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return True
    try:
        _loads(text)
    except Exception:  # whatever fails to parse is taken as a file path
        return False
    return True


class _NotJSON(ValueError):
    pass


def _reject_constant(name: str) -> object:
    raise _NotJSON(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _NotJSON(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return result


def _parse(text: str, *, source: str | None) -> object:
    """Parse JSON text; every failure is a CriteriaError (with line and column where known)."""
    where = f" in {source!r}" if source else ""
    try:
        return _loads(text)
    except json.JSONDecodeError as e:
        raise CriteriaError(
            f"malformed JSON{where}: {e.msg} at line {e.lineno}, column {e.colno}", path="$"
        ) from None
    except _NotJSON as e:
        raise CriteriaError(f"malformed JSON{where}: {e}", path="$") from None
    except RecursionError:
        raise CriteriaError(
            f"the JSON{where} nests too deeply (the limit is {DEFAULT_MAX_DEPTH} levels)", path="$"
        ) from None
    except Exception as e:  # anything else the parser or a number conversion raises
        raise CriteriaError(f"malformed JSON{where}: {type(e).__name__}: {e}", path="$") from e

"""Benchmark: compiled JSON Logic criteria against hand-written Python and two interpreters.

Run it with ``python benchmarks/bench_criteria.py`` (a few seconds). It first reports
conformance: every case of the 48 JSON Logic compatibility suites (json-logic/compat-tables,
vendored in ``tests/data/jsonlogic/suites``), file by file. Then it screens 10,000 seeded
random prospect records (about a third pass) with the six-clause rule below, using:

1. a hand-written Python function of the same test (the floor);
2. ``salesprocess`` criteria, compiled once (``Criteria.apply``);
3. ``panzi-json-logic`` (``json_logic.jsonLogic``), an interpreter;
4. ``json-logic-qubit``, another interpreter, when available. It installs a package named
   ``json_logic`` too, which would overwrite panzi's, so it is loaded from its own directory::

       pip install --no-deps --target /tmp/qubit-peer json-logic-qubit six
       JSON_LOGIC_QUBIT_DIR=/tmp/qubit-peer python benchmarks/bench_criteria.py

Every implementation must give the same answer on every record. Times are the best of several
passes over all records (timeit-style minimum), reported per record. Targets: all 1,138
conformance cases pass, ours at most 3x the hand-written function, panzi at least 15x slower
than ours. ``--check`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from salesprocess.criteria import Criteria
from salesprocess.errors import CriteriaError

try:
    import json_logic as panzi  # panzi-json-logic
except ImportError:  # pragma: no cover - the peer is optional
    panzi = None

RULE = {
    "and": [
        {"in": [{"var": "industry"}, ["manufacturing", "logistics", "retail"]]},
        {">=": [{"var": "employees"}, 50]},
        {"<=": [{"var": "employees"}, 5000]},
        {"==": [{"var": "region"}, "EU"]},
        {"!": {"var": "do_not_call"}},
        {">": [{"var": "budget"}, 10000]},
    ]
}
INDUSTRIES = frozenset({"manufacturing", "logistics", "retail"})
SUITES = Path(__file__).resolve().parent.parent / "tests" / "data" / "jsonlogic" / "suites"


def same(actual: object, expected: object) -> bool:
    """JSON equality that tells booleans from numbers (``True`` is not ``1`` here)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, (int, float)):
        return isinstance(actual, (int, float)) and actual == expected
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(same(actual[k], expected[k]) for k in expected)
        )
    return type(actual) is type(expected) and actual == expected


def passes(case: dict[str, object]) -> bool:
    """Run one suite case: the result must be equal, an error raised with its type."""
    expected_error = case.get("error")
    try:
        criteria = Criteria.from_dict(case["rule"], name="conformance", version="1")
        result = criteria.apply(case.get("data"))
    except CriteriaError as error:
        return isinstance(expected_error, dict) and error.error_type == expected_error["type"]
    return expected_error is None and same(result, case["result"])


def conformance() -> tuple[int, int]:
    """Print the pass count of every suite file; return (passed, cases) over all of them."""
    files: list[str] = json.loads((SUITES / "index.json").read_text(encoding="utf-8"))
    total = passed = 0
    print(f"JSON Logic conformance (json-logic/compat-tables, {len(files)} files)")
    for name in files:
        suite = json.loads((SUITES / name).read_text(encoding="utf-8"))
        cases = [case for case in suite if isinstance(case, dict)]
        ok = sum(passes(case) for case in cases)
        total += len(cases)
        passed += ok
        flag = "" if ok == len(cases) else "  FAILING"
        print(f"  {name:<36}{ok:>5} / {len(cases)}{flag}")
    print(f"  {'all files':<36}{passed:>5} / {total}\n")
    return passed, total


def hand_written(r: dict[str, object]) -> bool:
    """The same test in plain Python, for records with every field present."""
    return (
        r["industry"] in INDUSTRIES
        and 50 <= r["employees"] <= 5000  # type: ignore[operator]
        and r["region"] == "EU"
        and not r["do_not_call"]
        and r["budget"] > 10000  # type: ignore[operator]
    )


def records(count: int, seed: int = 2026) -> list[dict[str, object]]:
    """Seeded random prospects; about a third pass, the rest fail at various clauses."""
    rng = random.Random(seed)

    def maybe(p: float, yes: object, no: object) -> object:
        return yes if rng.random() < p else no

    return [
        {
            "industry": maybe(
                0.8, rng.choice(sorted(INDUSTRIES)), rng.choice(["finance", "energy"])
            ),
            "employees": maybe(
                0.85, rng.randint(50, 5000), rng.choice([rng.randint(1, 49), 12_000])
            ),
            "region": maybe(0.8, "EU", rng.choice(["US", "APAC"])),
            "do_not_call": rng.random() < 0.1,
            "budget": maybe(0.7, rng.randint(10_001, 250_000), rng.randint(0, 10_000)),
            "name": f"Prospect {i}",
        }
        for i in range(count)
    ]


def load_qubit() -> ModuleType | None:
    """Load json-logic-qubit from $JSON_LOGIC_QUBIT_DIR under its own module name."""
    folder = os.environ.get("JSON_LOGIC_QUBIT_DIR")
    if not folder:
        return None
    init = Path(folder) / "json_logic" / "__init__.py"
    spec = importlib.util.spec_from_file_location("json_logic_qubit", init)
    if spec is None or spec.loader is None or not init.exists():
        return None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, folder)  # for its dependency on six, if installed there
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module


def best_time(fn: Callable[[dict[str, object]], object], data: list[dict[str, object]]) -> float:
    """Seconds for one pass over ``data``."""
    start = time.perf_counter()
    for r in data:
        fn(r)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15, help="passes for the fast ones")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()

    passed, cases = conformance()
    data = records(args.records)
    criteria = Criteria.from_dict(RULE, name="bench", version="1")
    contenders: dict[str, Callable[[dict[str, object]], object]] = {
        "hand-written Python": hand_written,
        "salesprocess (compiled)": criteria.apply,
    }
    if panzi is not None:
        contenders["panzi-json-logic"] = lambda r: panzi.jsonLogic(RULE, r)
    else:
        print("panzi-json-logic is not installed: skipped")
    qubit = load_qubit()
    if qubit is not None:
        contenders["json-logic-qubit"] = lambda r: qubit.jsonLogic(RULE, r)
    else:
        print("json-logic-qubit: set JSON_LOGIC_QUBIT_DIR to include it (see the docstring)")

    expected = [hand_written(r) for r in data]
    for label, fn in contenders.items():
        got = [fn(r) for r in data]
        wrong = sum(g is not e for g, e in zip(got, expected, strict=True))
        if wrong:
            print(f"{label} disagrees with the hand-written test on {wrong} records")
            return 1
    print(
        f"all {len(contenders)} agree on all {len(data)} records "
        f"({sum(expected)} pass, {len(data) - sum(expected)} fail)"
    )

    best = dict.fromkeys(contenders, float("inf"))
    slow = {"panzi-json-logic", "json-logic-qubit"}
    for round_ in range(args.rounds):  # interleaved, so drift in machine load hits all alike
        for label, fn in contenders.items():
            if label in slow and round_ >= max(3, args.rounds // 3):
                continue
            best[label] = min(best[label], best_time(fn, data))

    per_record = {label: seconds / len(data) * 1e6 for label, seconds in best.items()}
    ours = per_record["salesprocess (compiled)"]
    hand = per_record["hand-written Python"]
    print(f"\nPython {platform.python_version()} on {platform.machine()}, best of passes")
    print(f"{'implementation':<26}{'µs/record':>11}{'x hand':>9}{'x ours':>9}")
    for label, micros in per_record.items():
        print(f"{label:<26}{micros:>11.3f}{micros / hand:>9.2f}{micros / ours:>9.2f}")

    print(f"\ntarget all conformance cases pass: {passed} / {cases}  ", end="")
    print("met" if passed == cases else "MISSED")
    ok = passed == cases
    ratio = ours / hand
    print(f"target ours <= 3x hand-written: {ratio:.2f}x  {'met' if ratio <= 3 else 'MISSED'}")
    ok &= ratio <= 3
    if "panzi-json-logic" in per_record:
        speedup = per_record["panzi-json-logic"] / ours
        print(f"target panzi >= 15x ours: {speedup:.1f}x  {'met' if speedup >= 15 else 'MISSED'}")
        ok &= speedup >= 15
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())

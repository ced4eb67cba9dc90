"""Bulk screening: ``screen_all`` over in-memory prospects, and whether it scales linearly.

Run: ``python benchmarks/bench_screening.py`` (a minute or two on two cores).

Screens 25,000, 50,000 and 100,000 prospects against the issue's six-clause criteria and
prints the time, the time per prospect, and the per-prospect cost relative to the smallest
run: a linear algorithm keeps that ratio near 1.
"""

from __future__ import annotations

import gc
import random
import time
from datetime import UTC, datetime

from bench_criteria import RULE  # the six-clause rule, one definition

import salesprocess as sp


def populated(count: int) -> sp.SalesProcess:
    rng = random.Random(count)
    criteria = sp.Criteria.from_dict(RULE, name="bench", version="1")
    sales = sp.SalesProcess(
        criteria=criteria, clock=sp.FixedClock(datetime(2026, 1, 5, tzinfo=UTC))
    )
    for i in range(count):
        sales.capture_lead(
            f"Company {i}",
            email=f"lead{i}@example.com",
            channel=sp.Channel.MARKETING_LIST,
            attributes={
                "industry": rng.choice(("manufacturing", "logistics", "retail", "food")),
                "employees": rng.randint(5, 10_000),
                "region": rng.choice(("EU", "NA")),
                "do_not_call": rng.random() < 0.1,
                "budget": rng.randint(0, 100_000),
            },
        )
    return sales


def main() -> None:
    populated(5_000).screen_all()  # warm-up: imports, caches, allocator
    baseline = None
    print(f"{'prospects':>10} {'seconds':>8} {'us/prospect':>12} {'vs smallest':>12} {'passed':>7}")
    for count in (25_000, 50_000, 100_000):
        sales = populated(count)
        gc.collect()
        started = time.perf_counter()
        reports = sales.screen_all()
        elapsed = time.perf_counter() - started
        assert len(reports) == count
        per = elapsed / count * 1e6
        baseline = baseline or per
        passed = sum(report.passed for report in reports)
        print(f"{count:>10} {elapsed:>8.2f} {per:>12.1f} {per / baseline:>11.2f}x {passed:>7}")


if __name__ == "__main__":
    main()

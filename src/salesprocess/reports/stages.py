"""Stage counts: how many accounts are at each stage of the lifecycle now."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from salesprocess.stage import Stage

__all__ = ["stage_counts"]


def stage_counts(counted: Mapping[Stage, int], stages: Iterable[Stage]) -> Mapping[Stage, int]:
    """Return ``counted`` (a store's ``count_by_stage()``) for every one of ``stages``.

    A stage no account is at counts 0, so a table or chart of the lifecycle has every rung.

    >>> stage_counts({Stage.CUSTOMER: 2}, [Stage.PROSPECT, Stage.CUSTOMER])
    {Stage.PROSPECT: 0, Stage.CUSTOMER: 2}
    """
    return {stage: counted.get(stage, 0) for stage in stages}

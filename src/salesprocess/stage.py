"""Stages of the account lifecycle.

``Stage`` is an interned string rather than an ``Enum`` so that a user's subclass of
:class:`~salesprocess.lifecycle.Lifecycle` can add a stage (say ``nurture``) without forking the
library: every state of the machine becomes a ``Stage`` named by the state's id, and
``Stage("nurture") is Stage("nurture")`` holds just as ``Stage.PROSPECT is Stage("prospect")``.

>>> Stage("prospect") is Stage.PROSPECT
True
>>> Stage.PROSPECT
Stage.PROSPECT
"""

from __future__ import annotations

from typing import ClassVar, final

from salesprocess.checks import shown
from salesprocess.errors import ValidationError

__all__ = ["Stage"]


@final
class Stage(str):
    """One stage of the lifecycle: an interned, lower-case identifier."""

    __slots__ = ()
    _interned: ClassVar[dict[str, Stage]] = {}

    PROSPECT: ClassVar[Stage]
    QUALIFIED: ClassVar[Stage]
    CUSTOMER: ClassVar[Stage]
    REPEAT: ClassVar[Stage]
    REFERRER: ClassVar[Stage]
    DISQUALIFIED: ClassVar[Stage]
    CHURNED: ClassVar[Stage]

    def __new__(cls, name: str) -> Stage:
        """Return the one ``Stage`` named ``name`` (creating it on first use)."""
        existing = cls._interned.get(name) if isinstance(name, str) else None
        if existing is not None:
            return existing
        if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
            raise ValidationError(
                f"stage {shown(name)} is not a lower-case identifier such as 'prospect'",
                field="stage",
            )
        # setdefault is atomic: two threads naming a new stage at once get the same object.
        return cls._interned.setdefault(name, super().__new__(cls, name))

    def __repr__(self) -> str:
        upper = self.upper()
        if getattr(Stage, upper, None) is self:
            return f"Stage.{upper}"
        return f"Stage({str(self)!r})"

    def __reduce__(self) -> tuple[type[Stage], tuple[str]]:
        return (Stage, (str(self),))

    def __copy__(self) -> Stage:
        return self

    def __deepcopy__(self, _memo: object) -> Stage:
        return self


Stage.PROSPECT = Stage("prospect")
Stage.QUALIFIED = Stage("qualified")
Stage.CUSTOMER = Stage("customer")
Stage.REPEAT = Stage("repeat")
Stage.REFERRER = Stage("referrer")
Stage.DISQUALIFIED = Stage("disqualified")
Stage.CHURNED = Stage("churned")

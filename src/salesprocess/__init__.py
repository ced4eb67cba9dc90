"""salesprocess: the sales process as a typed domain model.

Leads are captured and qualified (marketing criteria, then a confirming call), customers buy
and buy again, referrers bring new leads, and what each customer values guides service. The
lifecycle is one python-statemachine class; storage, rules and policies are pluggable.

>>> import salesprocess as sp
>>> sales = sp.SalesProcess()
>>> acct = sales.capture_lead("Acme Tools", email="Buyer@Acme.example",
...                           channel=sp.Channel.INBOUND_INQUIRY)
>>> acct.email, acct.stage
('buyer@acme.example', Stage.PROSPECT)
"""

from __future__ import annotations

from salesprocess.account import (
    Account,
    Attributes,
    Call,
    CallOutcome,
    Channel,
    Purchase,
    Screening,
    Source,
    StageChange,
)
from salesprocess.clock import Clock, FixedClock, SystemClock
from salesprocess.errors import (
    ConflictError,
    CriteriaError,
    CurrencyMismatch,
    InvalidTransition,
    NotFound,
    QualificationRefused,
    SalesProcessError,
    StorageError,
    ValidationError,
)
from salesprocess.events import (
    AccountBecameReferrer,
    AccountBecameRepeat,
    AccountChurned,
    AccountConverted,
    AccountDisqualified,
    AccountQualified,
    AccountRecycled,
    AccountWonBack,
    CallRecorded,
    DomainEvent,
    LeadCaptured,
    LeadScreened,
    PurchaseRecorded,
    StageChanged,
)
from salesprocess.lifecycle import Lifecycle, TransitionContext, Transitions
from salesprocess.money import Money
from salesprocess.qualification import (
    ClauseOutcome,
    QualificationPolicy,
    QualificationReport,
    ScreenAndCallPolicy,
)
from salesprocess.service import SalesProcess
from salesprocess.stage import Stage

__version__ = "0.1.0"

__all__ = [
    "Account",
    "AccountBecameReferrer",
    "AccountBecameRepeat",
    "AccountChurned",
    "AccountConverted",
    "AccountDisqualified",
    "AccountQualified",
    "AccountRecycled",
    "AccountWonBack",
    "Attributes",
    "Call",
    "CallOutcome",
    "CallRecorded",
    "Channel",
    "ClauseOutcome",
    "Clock",
    "ConflictError",
    "CriteriaError",
    "CurrencyMismatch",
    "DomainEvent",
    "FixedClock",
    "InvalidTransition",
    "LeadCaptured",
    "LeadScreened",
    "Lifecycle",
    "Money",
    "NotFound",
    "Purchase",
    "PurchaseRecorded",
    "QualificationPolicy",
    "QualificationRefused",
    "QualificationReport",
    "SalesProcess",
    "SalesProcessError",
    "ScreenAndCallPolicy",
    "Screening",
    "Source",
    "Stage",
    "StageChange",
    "StageChanged",
    "StorageError",
    "SystemClock",
    "TransitionContext",
    "Transitions",
    "ValidationError",
    "__version__",
]

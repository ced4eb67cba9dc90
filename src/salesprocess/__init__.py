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

from typing import TYPE_CHECKING, Final

from salesprocess.exports import lazy_exports

if TYPE_CHECKING:  # what the names below are, for type checkers; __getattr__ imports them
    from salesprocess import frameworks, reports
    from salesprocess.account import (
        Account,
        Asset,
        Attributes,
        Call,
        CallOutcome,
        Channel,
        HistoryEntry,
        Preference,
        Purchase,
        Referral,
        ReferralCards,
        ReferralRequest,
        Screening,
        Source,
    )
    from salesprocess.clock import Clock, FixedClock, SystemClock
    from salesprocess.commands import Decision, LeadCapture
    from salesprocess.commands.leads import LeadDetails
    from salesprocess.commands.purchases import PurchaseRow
    from salesprocess.criteria import ClauseResult, Criteria, Explanation
    from salesprocess.currencies import CurrencyRule
    from salesprocess.customer_service import (
        RepairOrReplacePolicy,
        ServiceAction,
        ServicePolicy,
        ServiceRecommendation,
    )
    from salesprocess.errors import (
        BadRows,
        ConflictError,
        CriteriaError,
        CurrencyMismatch,
        InvalidTransition,
        NotFound,
        QualificationRefused,
        RowError,
        SalesProcessError,
        StaleWrite,
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
        AssetRegistered,
        CallRecorded,
        ContactDetailsAdded,
        DomainEvent,
        EventBus,
        LeadCaptured,
        LeadScreened,
        PreferenceLearned,
        PurchaseRecorded,
        ReferralCardsIssued,
        ReferralRecorded,
        ReferralRequested,
        StageChanged,
    )
    from salesprocess.imports import LeadImport, PurchaseImport
    from salesprocess.json_views import from_json, json_schema, to_json
    from salesprocess.jsonlogic import Budget
    from salesprocess.lifecycle import Lifecycle, TransitionContext, Transitions
    from salesprocess.money import Money
    from salesprocess.process import SalesProcess
    from salesprocess.process_async import AsyncSalesProcess
    from salesprocess.qualification import (
        QualificationPolicy,
        QualificationReport,
        ScreenAndCallPolicy,
    )
    from salesprocess.reports import (
        FlowPeriod,
        Funnel,
        ReferralReport,
        ReferralStats,
        RepeatRow,
        Revenue,
        RevenueReport,
        RfmRow,
        Rung,
        StageTime,
    )
    from salesprocess.rules import (
        QualificationRule,
        Rule,
        RuleResult,
        all_of,
        any_of,
        at_least,
        attribute_rule,
        not_,
        rule,
        weighted,
    )
    from salesprocess.stage import Stage
    from salesprocess.unit_of_work import UnitOfWork

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
    "Asset",
    "AssetRegistered",
    "AsyncSalesProcess",
    "Attributes",
    "BadRows",
    "Budget",
    "Call",
    "CallOutcome",
    "CallRecorded",
    "Channel",
    "ClauseResult",
    "Clock",
    "ConflictError",
    "ContactDetailsAdded",
    "Criteria",
    "CriteriaError",
    "CurrencyMismatch",
    "CurrencyRule",
    "Decision",
    "DomainEvent",
    "EventBus",
    "Explanation",
    "FixedClock",
    "FlowPeriod",
    "Funnel",
    "HistoryEntry",
    "InvalidTransition",
    "LeadCapture",
    "LeadCaptured",
    "LeadDetails",
    "LeadImport",
    "LeadScreened",
    "Lifecycle",
    "Money",
    "NotFound",
    "Preference",
    "PreferenceLearned",
    "Purchase",
    "PurchaseImport",
    "PurchaseRecorded",
    "PurchaseRow",
    "QualificationPolicy",
    "QualificationRefused",
    "QualificationReport",
    "QualificationRule",
    "Referral",
    "ReferralCards",
    "ReferralCardsIssued",
    "ReferralRecorded",
    "ReferralReport",
    "ReferralRequest",
    "ReferralRequested",
    "ReferralStats",
    "RepairOrReplacePolicy",
    "RepeatRow",
    "Revenue",
    "RevenueReport",
    "RfmRow",
    "RowError",
    "Rule",
    "RuleResult",
    "Rung",
    "SalesProcess",
    "SalesProcessError",
    "ScreenAndCallPolicy",
    "Screening",
    "ServiceAction",
    "ServicePolicy",
    "ServiceRecommendation",
    "Source",
    "Stage",
    "StageChanged",
    "StageTime",
    "StaleWrite",
    "StorageError",
    "SystemClock",
    "TransitionContext",
    "Transitions",
    "UnitOfWork",
    "ValidationError",
    "__version__",
    "all_of",
    "any_of",
    "at_least",
    "attribute_rule",
    "frameworks",
    "from_json",
    "json_schema",
    "not_",
    "reports",
    "rule",
    "to_json",
    "weighted",
]

# Where each public name lives. Importing the package imports none of them: a program (the
# command line above all) loads the modules it uses when it first uses them (PEP 562), not
# all forty. tests/test_public_api.py checks that this table and the imports above agree.
_HOMES: Final[dict[str, tuple[str, ...]]] = {
    "salesprocess.reports": (
        "FlowPeriod",
        "Funnel",
        "ReferralReport",
        "ReferralStats",
        "RepeatRow",
        "Revenue",
        "RevenueReport",
        "RfmRow",
        "Rung",
        "StageTime",
    ),
    "salesprocess.account": (
        "Account",
        "Asset",
        "Attributes",
        "Call",
        "CallOutcome",
        "Channel",
        "HistoryEntry",
        "Preference",
        "Purchase",
        "Referral",
        "ReferralCards",
        "ReferralRequest",
        "Screening",
        "Source",
    ),
    "salesprocess.clock": (
        "Clock",
        "FixedClock",
        "SystemClock",
    ),
    "salesprocess.commands": (
        "Decision",
        "LeadCapture",
    ),
    "salesprocess.commands.leads": ("LeadDetails",),
    "salesprocess.commands.purchases": ("PurchaseRow",),
    "salesprocess.criteria": (
        "ClauseResult",
        "Criteria",
        "Explanation",
    ),
    "salesprocess.currencies": ("CurrencyRule",),
    "salesprocess.customer_service": (
        "RepairOrReplacePolicy",
        "ServiceAction",
        "ServicePolicy",
        "ServiceRecommendation",
    ),
    "salesprocess.errors": (
        "BadRows",
        "ConflictError",
        "CriteriaError",
        "CurrencyMismatch",
        "InvalidTransition",
        "NotFound",
        "QualificationRefused",
        "RowError",
        "SalesProcessError",
        "StaleWrite",
        "StorageError",
        "ValidationError",
    ),
    "salesprocess.events": (
        "AccountBecameReferrer",
        "AccountBecameRepeat",
        "AccountChurned",
        "AccountConverted",
        "AccountDisqualified",
        "AccountQualified",
        "AccountRecycled",
        "AccountWonBack",
        "AssetRegistered",
        "CallRecorded",
        "ContactDetailsAdded",
        "DomainEvent",
        "EventBus",
        "LeadCaptured",
        "LeadScreened",
        "PreferenceLearned",
        "PurchaseRecorded",
        "ReferralCardsIssued",
        "ReferralRecorded",
        "ReferralRequested",
        "StageChanged",
    ),
    "salesprocess.imports": (
        "LeadImport",
        "PurchaseImport",
    ),
    "salesprocess.json_views": (
        "from_json",
        "json_schema",
        "to_json",
    ),
    "salesprocess.jsonlogic": ("Budget",),
    "salesprocess.lifecycle": (
        "Lifecycle",
        "TransitionContext",
        "Transitions",
    ),
    "salesprocess.money": ("Money",),
    "salesprocess.process": ("SalesProcess",),
    "salesprocess.process_async": ("AsyncSalesProcess",),
    "salesprocess.qualification": (
        "QualificationPolicy",
        "QualificationReport",
        "ScreenAndCallPolicy",
    ),
    "salesprocess.rules": (
        "QualificationRule",
        "Rule",
        "RuleResult",
        "all_of",
        "any_of",
        "at_least",
        "attribute_rule",
        "not_",
        "rule",
        "weighted",
    ),
    "salesprocess.stage": ("Stage",),
    "salesprocess.unit_of_work": ("UnitOfWork",),
}
if not TYPE_CHECKING:  # hidden from type checkers: to them a misspelt name stays an error
    __getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())

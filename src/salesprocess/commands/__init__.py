"""The use cases: each command a pure decision over loaded accounts.

A command takes the accounts the :class:`~salesprocess.unit_of_work.UnitOfWork` loaded, the
moment and its arguments, and returns a :class:`~salesprocess.commands.decision.Decision`: the
accounts to write, the events to publish and the caller's answer. Commands import the domain
only; they read and write nothing, so each can be tested, and reused by another facade (the
async one, a batch job), without storage.

- :mod:`~salesprocess.commands.leads`: capture a lead, record a call.
- :mod:`~salesprocess.commands.qualifying`: screen, qualify, and the other lifecycle events.
- :mod:`~salesprocess.commands.purchases`: record a purchase.
- :mod:`~salesprocess.commands.referrals`: ask for referrals, record one, hand out cards.
- :mod:`~salesprocess.commands.care`: the service profile and repair-or-replace advice.
"""

from __future__ import annotations

from salesprocess.commands.decision import Decision
from salesprocess.commands.leads import LeadCapture

__all__ = ["Decision", "LeadCapture"]

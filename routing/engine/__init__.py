"""The pure routing engine: plain data in, a decision and its receipt out.

No ORM, no clock reads, no I/O. The intake worker, "simulate" and historical
replay build a ``LeadFacts`` and a ``Snapshot`` and call ``route_lead``; the
caller persists what the ``Decision`` says, including ``pointer_advance``.

``route_lead(lead, snapshot, now=...)`` works in this order:

1. Territory. A territory matches when the lead meets its criteria and those of
   all its ancestors (values of one kind are alternatives, kinds must all
   hold; postal prefixes match the postal code in upper case without spaces;
   product_line matches product_interest). The deepest match wins, then the
   one with more criteria kinds, then the lowest id. Its coverage is its own
   queue or rep, else the nearest covered ancestor's.
2. Account. For a matched account that is not a weak match, the open
   opportunity's owner, else the account owner, takes the lead when active and
   not out of office. Otherwise the receipt says why and the rules run.
3. Rules, by position (then id). The first rule whose condition holds and whose
   action can be carried out wins: a queue, the territory's coverage, the
   account owner, a named rep, nurture or discard. A rule that holds but cannot
   be carried out (its rep away, no territory coverage) is recorded as skipped.
   When no rule wins, the catch-all queue takes the lead.
4. Distribution inside a queue. Each member is eligible or skipped with every
   reason that applies: membership inactive, inactive, out of office, off hours
   (only when the queue skips off-hours reps), missing skill, at capacity,
   daily cap reached. Round robin, smooth weighted round robin or load
   balancing picks one eligible member; the others were "not their turn".
   When nobody is eligible, a "hold" queue keeps the lead (outcome "queued"),
   an "overflow" queue passes it to its fallback (or the catch-all), and a
   "hold off hours" queue holds it when someone would be eligible but for
   their hours and overflows otherwise. A held lead's receipt says when the
   first such member's working hours start (``held_until``). The chain is
   followed without looping; an inactive queue overflows the same way; the
   catch-all with nobody eligible holds. A lead that overflows keeps the skills
   the queues before required, unless the queue it reaches does not inherit
   them.
5. Receipt. Every decision carries a JSON-serialisable receipt: the territory
   candidates and choice, the account step, each rule evaluated and why it did
   not match, the queue path with every candidate rep and their reason, the
   winner, a one-line summary and ``decided_at``.
"""

from routing.engine.availability import (
    is_out_of_office,
    is_working,
    member_skip_reason,
    member_skip_reasons,
    next_working_start,
)
from routing.engine.conditions import describe, evaluate
from routing.engine.distribution import weighted_sequence
from routing.engine.facts import (
    AccountFacts,
    Condition,
    ConditionGroup,
    Decision,
    LeadFacts,
    MemberInfo,
    QueueInfo,
    RepInfo,
    RuleInfo,
    Snapshot,
    TerritoryInfo,
)
from routing.engine.route import (
    apply_decision,
    apply_decision_in_batch,
    batch_snapshot,
    batch_snapshot_settled,
    route_lead,
    with_rep_loads,
)

__all__ = [
    "AccountFacts",
    "Condition",
    "ConditionGroup",
    "Decision",
    "LeadFacts",
    "MemberInfo",
    "QueueInfo",
    "RepInfo",
    "RuleInfo",
    "Snapshot",
    "TerritoryInfo",
    "apply_decision",
    "apply_decision_in_batch",
    "batch_snapshot",
    "batch_snapshot_settled",
    "describe",
    "evaluate",
    "is_out_of_office",
    "is_working",
    "member_skip_reason",
    "member_skip_reasons",
    "next_working_start",
    "route_lead",
    "weighted_sequence",
    "with_rep_loads",
]

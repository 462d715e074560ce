"""The SLA ladder's webhook events: ``escalation.fired`` for every step that fires, ``sla.breached`` once, when
the policy's first step after the due time fires, and ``lead.reassigned`` when a step moves the lead."""

import pytest

from routing.models import WebhookSubscription
from routing.outbound import deliveries_send
from tests.receivers import Receiver, running
from tests.sla.test_sweep import MINUTE, T0, assigned_lead, inbound_queue, ladder_policy, sweep_at  # noqa: F401

pytestmark = pytest.mark.django_db


def test_the_ladder_sends_escalation_fired_each_step_and_sla_breached_once(sweep_at):  # noqa: F811
    ladder_policy()
    queue, (anna, _ben) = inbound_queue(["anna", "ben"])
    lead = assigned_lead(anna, queue)
    with running(Receiver()) as receiver:
        WebhookSubscription.objects.create(
            name="Warehouse",
            url=receiver.url("/hooks"),
            events=["sla.breached", "escalation.fired", "lead.reassigned"],
        )
        for minutes in (3, 5, 7):
            sweep_at(T0 + minutes * MINUTE)
        deliveries_send()

    events = [request.json() for request in receiver.requests]
    summary = [(event["type"], event["data"].get("escalation", {}).get("action")) for event in events]
    assert summary == [
        ("escalation.fired", "remind_rep"),
        ("sla.breached", "alert_manager"),
        ("escalation.fired", "alert_manager"),
        ("escalation.fired", "reassign"),
        ("lead.reassigned", None),
    ]
    assert {event["data"]["lead"]["id"] for event in events} == {lead.pk}
    reassigned = events[4]["data"]
    assert (reassigned["previous_owner"], reassigned["lead"]["owner"]) == ("anna", "ben")
    assert reassigned["assignment"]["reason"] == "escalation"
    assert "breached" in events[1]["data"]["escalation"]["reason"]
